use std::error::Error;

use tokio_postgres::{NoTls, error::SqlState};

type TestResult = Result<(), Box<dyn Error>>;

#[tokio::test]
async fn select_1_then_data_survives_a_restart_on_the_same_port() -> TestResult {
    let pg = test_support::postgres().await?;
    let url = pg.url();
    assert!(
        url.starts_with("postgres://postgres:")
            && url.ends_with(&format!("@127.0.0.1:{}/postgres", pg.host_port())),
        "{url}"
    );

    let client = pg.connect().await?;
    let one: i32 = client.query_one("SELECT 1", &[]).await?.get(0);
    assert_eq!(one, 1);
    client
        .batch_execute("CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)")
        .await?;
    drop(client);

    let port = pg.host_port();
    pg.stop().await?;
    assert!(
        tokio_postgres::connect(&url, NoTls).await.is_err(),
        "a stopped server must refuse connections"
    );
    pg.start().await?;
    assert_eq!(pg.host_port(), port);

    let client = pg.connect().await?;
    let one: i32 = client.query_one("SELECT 1", &[]).await?.get(0);
    assert_eq!(one, 1);
    let kept: i32 = client.query_one("SELECT v FROM kept", &[]).await?.get(0);
    assert_eq!(kept, 42);
    Ok(())
}

#[tokio::test]
async fn wrong_password_is_rejected() -> TestResult {
    let pg = test_support::postgres().await?;
    let url = format!(
        "postgres://postgres:wrong@127.0.0.1:{}/postgres",
        pg.host_port()
    );
    let err = tokio_postgres::connect(&url, NoTls).await.err();
    let code = err.as_ref().and_then(|e| e.code());
    assert_eq!(code, Some(&SqlState::INVALID_PASSWORD), "{err:?}");
    Ok(())
}
