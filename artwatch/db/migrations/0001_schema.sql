-- artwatch schema: every stage's state is a row, written idempotently by a unique key.

-- Content-addressed photos (catalogue and listings share one store, one row per sha256).
CREATE TABLE images (
    id          bigserial PRIMARY KEY,
    sha256      char(64) NOT NULL UNIQUE,
    format      text NOT NULL,
    width       integer NOT NULL CHECK (width > 0),
    height      integer NOT NULL CHECK (height > 0),
    size_bytes  bigint NOT NULL CHECK (size_bytes > 0),
    phash       bigint NOT NULL,            -- 64-bit perceptual hash (imagehash.phash), signed
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX images_phash_idx ON images (phash);

-- Museum catalogue.
CREATE TABLE objects (
    id          bigserial PRIMARY KEY,
    accession   text NOT NULL UNIQUE,       -- the catalogue's object_id
    collection  text NOT NULL,
    title       text,
    url         text,
    metadata    jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX objects_collection_idx ON objects (collection);

CREATE TABLE object_images (
    id          bigserial PRIMARY KEY,
    object_id   bigint NOT NULL REFERENCES objects (id) ON DELETE CASCADE,
    image_id    bigint NOT NULL UNIQUE REFERENCES images (id),  -- a photo shows one object
    source_name text,                       -- path in the catalogue manifest
    metadata    jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX object_images_object_idx ON object_images (object_id);

-- Model bundles and their embeddings.
CREATE TABLE bundles (
    id            bigserial PRIMARY KEY,
    name          text NOT NULL UNIQUE,
    path          text NOT NULL,
    architecture  text NOT NULL,
    manifest_hash text,
    info          jsonb NOT NULL DEFAULT '{}'::jsonb,  -- bundle.json as loaded
    active        boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX bundles_one_active_idx ON bundles (active) WHERE active;

CREATE TABLE embeddings (
    image_id    bigint NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    bundle_id   bigint NOT NULL REFERENCES bundles (id) ON DELETE CASCADE,
    vector      bytea NOT NULL,             -- float32 little-endian, L2-normalised
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (bundle_id, image_id)
);
CREATE INDEX embeddings_image_idx ON embeddings (image_id);

-- Auction houses and crawling.
CREATE TABLE sources (
    id            bigserial PRIMARY KEY,
    name          text NOT NULL UNIQUE,
    spider        text NOT NULL,
    start_urls    text[] NOT NULL,
    schedule      text NOT NULL DEFAULT '0 */6 * * *',   -- cron expression
    enabled       boolean NOT NULL DEFAULT true,
    allow_private boolean NOT NULL DEFAULT false,        -- may resolve to loopback/private hosts
    settings      jsonb NOT NULL DEFAULT '{}'::jsonb,    -- selectors, politeness overrides
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE crawls (
    id          bigserial PRIMARY KEY,
    source_id   bigint NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
    trigger     text NOT NULL DEFAULT 'schedule' CHECK (trigger IN ('schedule', 'manual', 'test')),
    status      text NOT NULL DEFAULT 'running'
                CHECK (status IN ('running', 'finished', 'failed')),
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    stats       jsonb NOT NULL DEFAULT '{}'::jsonb,
    error       text
);
CREATE INDEX crawls_source_started_idx ON crawls (source_id, started_at DESC);

CREATE TABLE listings (
    id            bigserial PRIMARY KEY,
    source_id     bigint NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
    external_id   text NOT NULL,            -- lot id, or the canonical URL when the site has none
    url           text NOT NULL,
    title         text,
    description   text,
    price         numeric,
    currency      text,
    estimate_low  numeric,
    estimate_high numeric,
    sale_date     date,
    seller        text,
    data          jsonb NOT NULL DEFAULT '{}'::jsonb,   -- everything else the spider read
    changes       jsonb NOT NULL DEFAULT '[]'::jsonb,   -- [{at, field, old, new}]
    first_seen    timestamptz NOT NULL DEFAULT now(),
    last_seen     timestamptz NOT NULL DEFAULT now(),
    last_crawl_id bigint REFERENCES crawls (id) ON DELETE SET NULL,
    UNIQUE (source_id, external_id)
);
CREATE INDEX listings_url_idx ON listings (url);
CREATE INDEX listings_last_seen_idx ON listings (last_seen DESC);

CREATE TABLE listing_images (
    id          bigserial PRIMARY KEY,
    listing_id  bigint NOT NULL REFERENCES listings (id) ON DELETE CASCADE,
    url         text NOT NULL,
    position    integer NOT NULL DEFAULT 0,
    image_id    bigint REFERENCES images (id),   -- null until stored, or when it failed
    status      text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'stored', 'failed')),
    error       text,
    first_seen  timestamptz NOT NULL DEFAULT now(),
    last_seen   timestamptz NOT NULL DEFAULT now(),
    queued_at   timestamptz,                    -- sent to the matcher
    UNIQUE (listing_id, url)
);
CREATE INDEX listing_images_image_idx ON listing_images (image_id);
CREATE INDEX listing_images_status_idx ON listing_images (status) WHERE status <> 'stored';

-- Recognition.
CREATE TABLE predictions (
    id          bigserial PRIMARY KEY,
    image_id    bigint NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    bundle_id   bigint NOT NULL REFERENCES bundles (id) ON DELETE CASCADE,
    topk        jsonb NOT NULL,             -- [{object_id, score, classifier, retrieval}]
    best_score  real NOT NULL,
    phash_hits  jsonb NOT NULL DEFAULT '[]'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (image_id, bundle_id)
);
CREATE INDEX predictions_bundle_idx ON predictions (bundle_id);

CREATE TABLE matches (
    id          bigserial PRIMARY KEY,
    listing_id  bigint NOT NULL REFERENCES listings (id) ON DELETE CASCADE,
    object_id   bigint NOT NULL REFERENCES objects (id) ON DELETE CASCADE,
    bundle_id   bigint REFERENCES bundles (id) ON DELETE SET NULL,
    score       real NOT NULL,
    rank        integer NOT NULL DEFAULT 1,
    evidence    jsonb NOT NULL DEFAULT '{}'::jsonb,    -- {image_id, method: phash|classifier|retrieval, ...}
    status      text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'confirmed', 'dismissed')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
-- bundle_id is null for model-free evidence (a perceptual-hash hit); coalesce keeps it unique.
CREATE UNIQUE INDEX matches_listing_object_bundle_key
    ON matches (listing_id, object_id, coalesce(bundle_id, 0));
CREATE INDEX matches_status_created_idx ON matches (status, created_at DESC);
CREATE INDEX matches_object_idx ON matches (object_id);

-- People and alerting.
CREATE TABLE reviewers (
    id            bigserial PRIMARY KEY,
    email         text NOT NULL UNIQUE,
    name          text NOT NULL DEFAULT '',
    password_hash text,
    team          text,
    active        boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE alerts (
    id           bigserial PRIMARY KEY,
    reviewer_id  bigint NOT NULL REFERENCES reviewers (id) ON DELETE CASCADE,
    kind         text NOT NULL CHECK (kind IN ('digest', 'urgent')),
    status       text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    message_id   text NOT NULL UNIQUE,      -- RFC 5322 Message-ID, fixed before sending
    attempts     integer NOT NULL DEFAULT 0,
    error        text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    sent_at      timestamptz
);
CREATE INDEX alerts_status_idx ON alerts (status) WHERE status <> 'sent';

CREATE TABLE alert_items (
    alert_id     bigint NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    match_id     bigint NOT NULL REFERENCES matches (id) ON DELETE CASCADE,
    reviewer_id  bigint NOT NULL REFERENCES reviewers (id) ON DELETE CASCADE,
    PRIMARY KEY (alert_id, match_id),
    UNIQUE (match_id, reviewer_id)          -- a match is alerted to a reviewer once
);

CREATE TABLE reviews (
    id           bigserial PRIMARY KEY,
    match_id     bigint NOT NULL REFERENCES matches (id) ON DELETE CASCADE,
    reviewer_id  bigint NOT NULL REFERENCES reviewers (id) ON DELETE CASCADE,
    decision     text NOT NULL CHECK (decision IN ('confirm', 'dismiss')),
    note         text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (match_id, reviewer_id)
);

CREATE TABLE submissions (
    id           bigserial PRIMARY KEY,
    url          text NOT NULL,
    requested_by text NOT NULL DEFAULT 'cli',
    status       text NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'crawled', 'matched', 'failed')),
    listing_id   bigint REFERENCES listings (id) ON DELETE SET NULL,
    crawl_id     bigint REFERENCES crawls (id) ON DELETE SET NULL,
    error        text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz
);
CREATE INDEX submissions_url_idx ON submissions (url);
