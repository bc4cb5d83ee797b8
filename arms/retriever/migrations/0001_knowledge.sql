-- The retriever's knowledge store: documents found by full-text search
-- (a weighted tsvector with a GIN index, ranked with ts_rank) and by title
-- similarity (pg_trgm, a trusted extension the database owner may create).
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE knowledge_documents (
    id uuid PRIMARY KEY,
    title text NOT NULL CHECK (char_length(title) BETWEEN 1 AND 500),
    body text NOT NULL CHECK (char_length(body) BETWEEN 1 AND 100000),
    source text NOT NULL CHECK (char_length(source) BETWEEN 1 AND 2048),
    created_at timestamptz NOT NULL DEFAULT now(),
    search tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('english', title), 'A')
        || setweight(to_tsvector('english', body), 'B')
    ) STORED
);

CREATE INDEX knowledge_documents_search ON knowledge_documents USING gin (search);
CREATE INDEX knowledge_documents_title_trgm ON knowledge_documents USING gin (title gin_trgm_ops);
