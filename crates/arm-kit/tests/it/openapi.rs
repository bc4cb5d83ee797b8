use crate::serve;

#[tokio::test]
async fn openapi_document_is_stable() {
    let arm = serve().await;
    let answer = arm.get("/openapi.json", false).await;
    assert_eq!(answer.status, 200);
    insta::assert_json_snapshot!("openapi", answer.body);
}
