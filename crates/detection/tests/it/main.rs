#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api;
mod corpus_eval;
mod learned_eval;
mod pii_formats;
mod props;
