-- matcher/: what the sweeper needs to find interrupted work again (matcher/sweeper.py).

-- How often the sweeper re-queued a stored photo that still has no prediction; at
-- ARTWATCH_MATCHER_MAX_ATTEMPTS it is marked failed with the reason instead.
ALTER TABLE listing_images ADD COLUMN match_attempts integer NOT NULL DEFAULT 0;

-- When a listing was last scored under a bundle (its matches written, or found to have
-- none; null: not yet): predictions newer than scored_at mean it must be scored again.
CREATE TABLE listing_scores (
    listing_id  bigint NOT NULL REFERENCES listings (id) ON DELETE CASCADE,
    bundle_id   bigint NOT NULL REFERENCES bundles (id) ON DELETE CASCADE,
    scored_at   timestamptz,
    attempts    integer NOT NULL DEFAULT 0,     -- sweeper re-queues since the last scoring
    queued_at   timestamptz,                    -- when the sweeper last re-queued it
    error       text,                           -- why the last scoring failed, if it did
    PRIMARY KEY (listing_id, bundle_id)
);
