//! The agent dying mid-operation, the server going away and coming back, and the same work
//! request delivered twice — with the real apt of a Debian root and a real osmd.

mod support;

use std::time::{Duration, Instant};

use osm_agent::agent::Agent;
use osm_agent::config::Settings;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_mid_operation_unreachable_server_and_duplicate_delivery() {
    let tmp = debian_root();
    let root = tmp.path().join("root");
    build_repo(
        &root,
        &[
            Deb {
                name: "osm-slow",
                version: "1.0",
                suite: "osmtest",
                change: "Initial release.",
                // Long enough to be killed in the middle of it.
                preinst: Some("echo osm-slow preinst starting; sleep 120"),
            },
            Deb {
                name: "osm-extra",
                version: "1.0",
                suite: "osmtest",
                change: "Initial release.",
                preinst: None,
            },
            Deb {
                name: "osm-third",
                version: "1.0",
                suite: "osmtest",
                change: "Initial release.",
                preinst: None,
            },
        ],
    );
    let mut osmd = Osmd::start().await;
    let state = tmp.path().join("state");
    let log = tmp.path().join("agent.log");
    let out = agent_cmd(&osmd, &root, &state, "enroll").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let identity: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state.join("identity.json")).unwrap()).unwrap();
    let instance = identity["instanceId"].as_str().unwrap().to_string();

    // 1. Killed (with apt and dpkg) in the middle of an install.
    let mut agent = AgentProc::spawn(agent_cmd(&osmd, &root, &state, "run"), log.clone());
    let wr = osmd
        .action(
            &instance,
            "packages/install",
            "softwarePackageName=osm-slow",
        )
        .await;
    let deadline = Instant::now() + Duration::from_secs(120);
    while !osmd
        .logs(&wr)
        .await
        .iter()
        .any(|l| l.contains("osm-slow preinst starting"))
    {
        assert!(
            Instant::now() < deadline,
            "the install never reached preinst: {}",
            agent.output()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    agent.kill_all();
    let runs_before = osmd
        .logs(&wr)
        .await
        .iter()
        .filter(|l| l.starts_with("$ apt-get -y"))
        .count();
    assert_eq!(runs_before, 1);
    // On restart: reported FAILED with what dpkg says, and not run again.
    let mut agent = AgentProc::spawn(agent_cmd(&osmd, &root, &state, "run"), log.clone());
    let (status, logs, errors) = osmd.finished(&wr, Duration::from_secs(60)).await;
    assert_eq!(status, "FAILED", "{logs:#?}");
    assert_eq!(errors[0]["code"], "AgentInterrupted", "{errors:?}");
    let message = errors[0]["message"].as_str().unwrap();
    assert!(message.contains("dpkg --audit"), "{message}");
    assert!(
        message.contains("osm-slow"),
        "dpkg --audit should name the package: {message}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let runs_after = osmd
        .logs(&wr)
        .await
        .iter()
        .filter(|l| l.starts_with("$ apt-get -y"))
        .count();
    assert_eq!(runs_after, 1, "the interrupted install ran again");
    assert!(!installed(&root).contains_key("osm-slow"));
    // Leave the root consistent for what follows.
    chroot(
        &root,
        &["dpkg", "--remove", "--force-remove-reinstreq", "osm-slow"],
    );

    // 2. The server goes away: the agent backs off, and serves work once it is back.
    osmd.stop();
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(
        agent.output().contains("server unreachable; retrying in"),
        "{}",
        agent.output()
    );
    osmd.restart().await;
    let wr = osmd
        .action(
            &instance,
            "packages/install",
            "softwarePackageName=osm-extra",
        )
        .await;
    let (status, logs, _) = osmd.finished(&wr, Duration::from_secs(120)).await;
    assert_eq!(status, "SUCCEEDED", "{logs:#?}\n{}", agent.output());
    assert_eq!(installed(&root)["osm-extra"], "1.0");
    agent.kill_all();

    // 3. The same work request delivered twice runs once.
    let wr = osmd
        .action(
            &instance,
            "packages/install",
            "softwarePackageName=osm-third",
        )
        .await;
    let settings = Settings {
        state_dir: state.clone(),
        root: Some(root.clone()),
        backend: "apt".into(),
        server: Some(osmd.url()),
        heartbeat_secs: Some(1),
        lock_wait_secs: 3,
        ..Settings::default()
    };
    let mut agent = Agent::start(settings).await.unwrap();
    let items = agent.poll_once(5).await.expect("poll");
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["id"], wr.as_str());
    agent.handle(items[0].clone()).await;
    agent.handle(items[0].clone()).await;
    let (status, logs, _) = osmd.finished(&wr, Duration::from_secs(30)).await;
    assert_eq!(status, "SUCCEEDED", "{logs:#?}");
    let runs = logs
        .iter()
        .filter(|l| l.starts_with("$ apt-get -y"))
        .count();
    assert_eq!(runs, 1, "{logs:#?}");
    assert_eq!(installed(&root)["osm-third"], "1.0");
}
