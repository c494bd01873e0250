-- crawler/: what could not be read from a lot page (no photo, no schema.org Product, a price
-- that is not one unambiguous number, ...) as [{reason, detail}] (crawler/problems.py), as the
-- latest crawl of the lot found it. Empty for a lot read completely.
ALTER TABLE listings ADD COLUMN problems jsonb NOT NULL DEFAULT '[]'::jsonb;
CREATE INDEX listings_with_problems_idx ON listings (last_seen DESC)
    WHERE problems <> '[]'::jsonb;
