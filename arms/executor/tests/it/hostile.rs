use serde_json::json;

use crate::executor;

#[tokio::test]
async fn shell_syntax_is_only_text() {
    let h = executor().await;
    let args = [
        "; rm -rf ~",
        "$(touch pwned)",
        "`touch pwned2`",
        "&& id",
        "| cat",
        "*",
    ];
    let answer = h.run("echo", &args).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_eq!(
        answer.body["output"]["stdout"],
        format!("{}\n", args.join(" "))
    );
    assert!(!h.dir.path().join("pwned").exists());
    assert!(!h.dir.path().join("pwned2").exists());
}

#[tokio::test]
async fn commands_outside_the_allow_list_are_403() {
    let h = executor().await;
    for (command, args) in [
        ("; rm -rf /", vec![]),
        ("rm", vec!["-rf", "x"]),
        ("sh", vec!["-c", "id"]),
        ("bash", vec![]),
        ("$(id)", vec![]),
        ("`id`", vec![]),
        ("/bin/echo", vec!["hi"]),
        ("../../bin/sh", vec![]),
    ] {
        let answer = h.run(command, &args).await;
        assert_eq!(answer.status, 403, "{command}: {:?}", answer.body);
        assert_eq!(
            answer.body["type"],
            "https://octollm.dev/problems/forbidden"
        );
        let detail = answer.body["detail"].as_str().unwrap();
        assert!(
            detail.contains("allow-list") || detail.contains("bare program name"),
            "{detail}"
        );
    }
    // Bounded cardinality: every refused name counts as `other`.
    assert_eq!(h.commands("other", "denied").await, 8.0);
    let metrics = h.arm.metrics().await;
    assert!(!metrics.contains("command=\"rm\""), "{metrics}");
    assert!(!metrics.contains("command=\"; rm"));
}

#[tokio::test]
async fn paths_out_of_the_working_directory_are_403() {
    let h = executor().await;
    std::os::unix::fs::symlink("/etc", h.dir.path().join("etc")).unwrap();
    for (args, reason) in [
        (vec!["../../etc/passwd"], "climbs out"),
        (vec!["/etc/passwd"], "absolute path"),
        (vec!["etc/passwd"], "link that leads outside"),
        (vec!["ok.txt", "sub/../../secret"], "argument 2 climbs out"),
        (vec!["--files0-from=/etc/passwd"], "absolute path"),
    ] {
        let answer = h.run("cat", &args).await;
        assert_eq!(answer.status, 403, "{args:?}: {:?}", answer.body);
        let detail = answer.body["detail"].as_str().unwrap();
        assert!(detail.contains(reason), "{args:?}: {detail}");
    }
    assert_eq!(h.commands("cat", "denied").await, 5.0);
    let answer = h.run("date", &["-s", "2000-01-01"]).await;
    assert_eq!(answer.status, 403);
    assert!(
        answer.body["detail"]
            .as_str()
            .unwrap()
            .contains("never set the clock")
    );
    let answer = h.run("date", &["+%Y"]).await;
    assert_eq!(answer.status, 200);
}

#[tokio::test]
async fn malformed_input_is_422() {
    let h = executor().await;
    for input in [
        json!({}),
        json!({"command": ""}),
        json!({"command": "echo", "args": "hi"}),
        json!({"command": "echo", "args": vec!["a"; 65]}),
        json!({"command": "echo", "args": ["x".repeat(4097)]}),
        json!({"command": "echo", "env": {"LD_PRELOAD": "x"}}),
    ] {
        let body = arm_kit::testing::execute_body("run_command", input.clone());
        let answer = h.run_body(body, &["echo"]).await;
        assert_eq!(answer.status, 422, "{input}: {:?}", answer.body);
    }
}
