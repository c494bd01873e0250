-- matcher/: the calibration cell whose threshold decided a listing (matcher.scoring.bucket_of:
-- its size bucket and, for a bundle with a look model, "catalogue" or "marketplace" look, e.g.
-- "3-4/marketplace"); null when nothing was calibrated for it. The promise a decision was made
-- under is the bundle's promise for this cell.
ALTER TABLE listing_decisions ADD COLUMN cell text;
