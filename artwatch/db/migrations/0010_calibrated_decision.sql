-- One calibrated alert decision per listing (matcher.scoring) and retro-hunts.

-- The perceptual hash of a photo's left-right mirror image (a mirrored re-use of a museum
-- photo is found by comparing it too); null for photos stored before it was recorded.
ALTER TABLE images ADD COLUMN phash_mirror bigint;

-- A catalogue photo's distractor background under the bundle (matcher.evidence): its mean
-- similarity to its nearest photos in the bundle's bank of ordinary listing photos.
-- Null for listing photos (their embeddings are kept for retro-hunts).
ALTER TABLE embeddings ADD COLUMN background real;

-- When a bundle became the active one (retro-hunts and status report it).
ALTER TABLE bundles ADD COLUMN activated_at timestamptz;

-- The decision on a listing under a bundle: the best object's listing-level probability,
-- the threshold it was held against (by its number of distinct photos) and the outcome.
-- Every scored listing has one, alerted or not, so a decision can be audited afterwards.
CREATE TABLE listing_decisions (
    listing_id       bigint NOT NULL REFERENCES listings (id) ON DELETE CASCADE,
    bundle_id        bigint NOT NULL REFERENCES bundles (id) ON DELETE CASCADE,
    score            real NOT NULL,
    object_id        bigint REFERENCES objects (id) ON DELETE SET NULL,
    photos           integer NOT NULL,          -- distinct photos (the same picture counts once)
    operating_point  text NOT NULL,
    threshold        real,                      -- null: the point never alerts at this size
    alerted          boolean NOT NULL,
    decided_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (listing_id, bundle_id)
);
CREATE INDEX listing_decisions_alerted_idx ON listing_decisions (bundle_id, alerted);

-- How a match was found: by the live matcher, or by re-scoring stored listings after the
-- catalogue or the model changed (a retro-hunt).
ALTER TABLE matches ADD COLUMN origin text NOT NULL DEFAULT 'live'
    CHECK (origin IN ('live', 'retro-hunt'));

-- Retro-hunts: resumable re-scoring of stored listings (artwatch retrohunt).
CREATE TABLE retrohunts (
    id               bigserial PRIMARY KEY,
    bundle_id        bigint NOT NULL REFERENCES bundles (id) ON DELETE CASCADE,
    reason           text NOT NULL,             -- import | index | activate | manual
    since            timestamptz,               -- only listings first seen since then
    status           text NOT NULL DEFAULT 'running'
                     CHECK (status IN ('running', 'finished', 'failed')),
    last_listing_id  bigint NOT NULL DEFAULT 0, -- resume point (listings are taken in id order)
    listings         integer NOT NULL DEFAULT 0,
    photos_requeued  integer NOT NULL DEFAULT 0,
    matches          integer NOT NULL DEFAULT 0,
    error            text,
    started_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz
);
