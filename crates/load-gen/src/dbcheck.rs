//! Optional cross-check of the ledger against the orchestrator's database:
//! every acknowledged id must have a row in `tasks`, in the state the API
//! reported. The URL comes from a file (`--database-url-file`), never argv.

use crate::report::DbCheck;

/// `api_view`: (task id, status the API answered; None when it answered 404).
pub async fn check(url: &str, api_view: &[(String, Option<&str>)]) -> DbCheck {
    match run(url, api_view).await {
        Ok(check) => check,
        Err(e) => DbCheck {
            error: Some(e.to_string()),
            ..DbCheck::default()
        },
    }
}

async fn run(
    url: &str,
    api_view: &[(String, Option<&str>)],
) -> Result<DbCheck, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    let driver = tokio::spawn(connection);
    let mut check = DbCheck::default();
    for chunk in api_view.chunks(1000) {
        let ids: Vec<&str> = chunk.iter().map(|(id, _)| id.as_str()).collect();
        let rows = client
            .query(
                "SELECT id::text, status FROM tasks WHERE id = ANY(($1::text[])::uuid[])",
                &[&ids],
            )
            .await?;
        let found: std::collections::HashMap<String, String> = rows
            .iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))
            .collect();
        for (id, api_status) in chunk {
            check.checked += 1;
            match (found.get(id), api_status) {
                (None, _) => check.missing += 1,
                (Some(db), Some(api)) if db != api => check.status_mismatch += 1,
                _ => {}
            }
        }
    }
    drop(client);
    driver.abort();
    Ok(check)
}
