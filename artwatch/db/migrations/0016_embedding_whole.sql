-- matcher/: a listing photo embedded from its object crop (matcher.crop) keeps its whole
-- picture's embedding here: whether two photos of one listing are the same picture is a
-- question about the whole pictures (two views of one object, each cropped to the object,
-- can look alike). Null when `vector` is the whole picture's (no crop, catalogue photos).
ALTER TABLE embeddings ADD COLUMN whole bytea;
