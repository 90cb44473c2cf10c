//! What the real-package-manager tests share: a Debian root (debootstrapped once into
//! `target/osm-agent-roots`, copied per test), a local apt repository built by the test, a
//! real osmd spawned as a child, and the osm-agent binary.

#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use osm_client::{Client, OciConfig};
use serde_json::Value;

const WORKSPACE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// `target/<profile>`: tests run from target/<profile>/deps/<test>-<hash>.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

pub fn target_dir() -> PathBuf {
    profile_dir().parent().unwrap().to_path_buf()
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The Debian mirror apt on this machine uses (CI machines reach it), else Debian's CDN.
fn debian_mirror() -> String {
    let mut texts = vec![];
    texts.push(std::fs::read_to_string("/etc/apt/sources.list").unwrap_or_default());
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        for e in dir.flatten() {
            texts.push(std::fs::read_to_string(e.path()).unwrap_or_default());
        }
    }
    for text in texts {
        for line in text.lines() {
            let line = line.trim();
            let uri = line.strip_prefix("URIs:").map(str::trim).or_else(|| {
                line.strip_prefix("deb ")
                    .and_then(|l| l.split_whitespace().find(|w| w.starts_with("http")))
            });
            if let Some(uri) = uri
                && uri.trim_end_matches('/').ends_with("/debian")
            {
                return uri.trim_end_matches('/').to_string();
            }
        }
    }
    "http://deb.debian.org/debian".into()
}

/// A private copy of a minimal Debian 12 root. The first call on a machine debootstraps it
/// (a minute or two, needs Debian's mirror); later ones copy the cached one (seconds).
pub fn debian_root() -> tempfile::TempDir {
    let cache = target_dir().join("osm-agent-roots");
    let ready = cache.join("bookworm");
    std::fs::create_dir_all(&cache).unwrap();
    {
        // One creator at a time (tests run in parallel).
        let lock = std::fs::File::create(cache.join(".lock")).unwrap();
        lock.lock().unwrap();
        if !ready.join("usr/bin/apt-get").exists() {
            if which("debootstrap").is_none() {
                run(Command::new("apt-get")
                    .args(["install", "-y", "-q", "debootstrap"])
                    .env("DEBIAN_FRONTEND", "noninteractive"));
            }
            let partial = cache.join("bookworm.partial");
            let _ = std::fs::remove_dir_all(&partial);
            eprintln!(
                "creating the cached Debian root in {} (once)",
                ready.display()
            );
            run(Command::new("debootstrap")
                .args(["--variant=minbase", "bookworm"])
                .arg(&partial)
                .arg(debian_mirror()));
            std::fs::rename(&partial, &ready).unwrap();
        }
    }
    let dir = tempfile::Builder::new()
        .prefix("osm-agent-root-")
        .tempdir_in(&cache)
        .unwrap();
    let copy = dir.path().join("root");
    run(Command::new("cp")
        .args(["-a", "--reflink=auto"])
        .arg(&ready)
        .arg(&copy));
    dir
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/sbin", "/sbin"])
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file())
}

/// A package of the test repository.
pub struct Deb {
    pub name: &'static str,
    pub version: &'static str,
    pub suite: &'static str,
    /// Text of the newest changelog entry.
    pub change: &'static str,
    /// A `preinst` script body, if any.
    pub preinst: Option<&'static str>,
}

fn sha256_hex(bytes: &[u8]) -> String {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn gzip(text: &str) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(vec![], flate2::Compression::default());
    enc.write_all(text.as_bytes()).unwrap();
    enc.finish().unwrap()
}

/// Builds the packages with dpkg-deb into `<root>/srv/repo` with a Packages index and a
/// Release file per suite, and points the root's apt at it (and nothing else).
pub fn build_repo(root: &Path, debs: &[Deb]) {
    let repo = root.join("srv/repo");
    let work = root.join("tmp/osm-build");
    let mut suites: std::collections::BTreeMap<&str, String> = Default::default();
    for d in debs {
        let dir = work.join(format!("{}-{}", d.name, d.version));
        std::fs::create_dir_all(dir.join("DEBIAN")).unwrap();
        let doc = dir.join(format!("usr/share/doc/{}", d.name));
        std::fs::create_dir_all(&doc).unwrap();
        let control = format!(
            "Package: {}\nVersion: {}\nArchitecture: all\nMaintainer: osm tests <osm@example.invalid>\nSection: misc\nPriority: optional\nDescription: osm-agent test package\n",
            d.name, d.version
        );
        std::fs::write(dir.join("DEBIAN/control"), &control).unwrap();
        if let Some(script) = d.preinst {
            let p = dir.join("DEBIAN/preinst");
            std::fs::write(&p, format!("#!/bin/sh\n{script}\n")).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let mut changelog = format!(
            "{} ({}) {}; urgency=medium\n\n  * {}\n\n -- osm tests <osm@example.invalid>  Mon, 01 Jan 2024 00:00:00 +0000\n",
            d.name, d.version, d.suite, d.change
        );
        if d.version != "1.0" {
            changelog.push_str(&format!(
                "\n{} (1.0) osmtest; urgency=medium\n\n  * Initial release (CVE-2000-0001 is old news).\n\n -- osm tests <osm@example.invalid>  Mon, 01 Jan 2023 00:00:00 +0000\n",
                d.name
            ));
        }
        std::fs::write(doc.join("changelog.Debian.gz"), gzip(&changelog)).unwrap();
        let pool = repo.join("pool").join(d.suite);
        std::fs::create_dir_all(&pool).unwrap();
        let file = format!("{}_{}_all.deb", d.name, d.version);
        run(Command::new("dpkg-deb")
            .args(["--root-owner-group", "-Zgzip", "-b"])
            .arg(&dir)
            .arg(pool.join(&file)));
        let bytes = std::fs::read(pool.join(&file)).unwrap();
        let entry = format!(
            "{control}Filename: pool/{}/{file}\nSize: {}\nSHA256: {}\n\n",
            d.suite,
            bytes.len(),
            sha256_hex(&bytes)
        );
        suites.entry(d.suite).or_default().push_str(&entry);
    }
    let mut sources = String::new();
    for (suite, packages) in &suites {
        let bin = repo.join(format!("dists/{suite}/main/binary-all"));
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::write(bin.join("Packages"), packages).unwrap();
        let release = format!(
            "Origin: osmtest\nLabel: osmtest\nSuite: {suite}\nCodename: {suite}\nDate: Mon, 01 Jan 2024 00:00:00 UTC\nArchitectures: all amd64\nComponents: main\nSHA256:\n {} {} main/binary-all/Packages\n",
            sha256_hex(packages.as_bytes()),
            packages.len()
        );
        std::fs::write(repo.join(format!("dists/{suite}/Release")), release).unwrap();
        sources.push_str(&format!("deb [trusted=yes] file:/srv/repo {suite} main\n"));
    }
    std::fs::write(root.join("etc/apt/sources.list"), sources).unwrap();
    let _ = std::fs::remove_dir_all(root.join("etc/apt/sources.list.d"));
    std::fs::create_dir_all(root.join("etc/apt/sources.list.d")).unwrap();
    chroot(root, &["apt-get", "-q", "update"]);
}

/// Runs a command inside the root, panicking on failure; returns stdout.
pub fn chroot(root: &Path, argv: &[&str]) -> String {
    run(Command::new("chroot")
        .arg(root)
        .args(argv)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .env("LC_ALL", "C"))
}

/// `name → version` of the fully installed packages of the root.
pub fn installed(root: &Path) -> std::collections::BTreeMap<String, String> {
    chroot(
        root,
        &[
            "dpkg-query",
            "-W",
            "-f=${db:Status-Abbrev} ${Package} ${Version}\n",
        ],
    )
    .lines()
    .filter(|l| l.starts_with("ii"))
    .filter_map(|l| {
        let mut f = l.split_whitespace().skip(1);
        Some((f.next()?.to_string(), f.next()?.to_string()))
    })
    .collect()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The osmd binary of this workspace, of the same profile (built when missing).
fn osmd_bin() -> PathBuf {
    let dir = profile_dir();
    let bin = dir.join("osmd");
    if !bin.exists() {
        let mut build = Command::new(env!("CARGO"));
        build
            .args(["build", "--bin", "osmd"])
            .current_dir(WORKSPACE);
        if dir.ends_with("release") {
            build.arg("--release");
        }
        run(&mut build);
    }
    bin
}

/// A real osmd, spawned as a child process, with its own data directory.
pub struct Osmd {
    child: Option<Child>,
    pub data: tempfile::TempDir,
    pub port: u16,
    pub client: Client,
    pub tenancy: String,
}

impl Osmd {
    pub async fn start() -> Osmd {
        let data = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Self::spawn(data.path(), port);
        while !data.path().join("admin/config").exists() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let config = OciConfig::load(&data.path().join("admin/config"), "DEFAULT").unwrap();
        let client = Client::from_config(
            &config,
            Some(&data.path().join("tls/ca.pem")),
            Some(&format!("https://127.0.0.1:{port}")),
        )
        .unwrap();
        let osmd = Osmd {
            child: Some(child),
            data,
            port,
            client,
            tenancy: config.tenancy,
        };
        osmd.wait_healthy().await;
        osmd
    }

    fn spawn(dir: &Path, port: u16) -> Child {
        Command::new(osmd_bin())
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    pub fn ca(&self) -> PathBuf {
        self.data.path().join("tls/ca.pem")
    }

    pub fn install_key(&self) -> PathBuf {
        self.data.path().join("admin/install-key")
    }

    async fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.client.get("/healthz").await.map(|r| r.status).ok() != Some(200) {
            assert!(Instant::now() < deadline, "osmd did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    pub async fn restart(&mut self) {
        self.stop();
        self.child = Some(Self::spawn(self.data.path(), self.port));
        self.wait_healthy().await;
    }

    pub async fn get(&self, path: &str) -> Value {
        let r = self.client.get(path).await.unwrap();
        assert_eq!(r.status, 200, "GET {path}: {}", r.text());
        r.json()
    }

    /// Starts an action on an instance; returns the work request id.
    pub async fn action(&self, instance: &str, action: &str, query: &str) -> String {
        let path = format!("/20190801/managedInstances/{instance}/actions/{action}?{query}");
        let r = self.client.post_json(&path, None, &[]).await.unwrap();
        assert_eq!(r.status, 202, "POST {path}: {}", r.text());
        r.header("opc-work-request-id").unwrap().to_string()
    }

    /// Waits for a work request to end; returns (status, log messages, errors).
    pub async fn finished(&self, id: &str, within: Duration) -> (String, Vec<String>, Vec<Value>) {
        let deadline = Instant::now() + within;
        loop {
            let wr = self.get(&format!("/20190801/workRequests/{id}")).await;
            let status = wr["status"].as_str().unwrap().to_string();
            if ["SUCCEEDED", "FAILED", "CANCELED"].contains(&status.as_str()) {
                return (status, self.logs(id).await, self.errors(id).await);
            }
            assert!(
                Instant::now() < deadline,
                "work request {id} still {status}; log: {:?}",
                self.logs(id).await
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn logs(&self, id: &str) -> Vec<String> {
        let v = self
            .get(&format!("/20190801/workRequests/{id}/logs?limit=1000"))
            .await;
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| e["message"].as_str().unwrap().to_string())
            .collect()
    }

    pub async fn errors(&self, id: &str) -> Vec<Value> {
        self.get(&format!("/20190801/workRequests/{id}/errors"))
            .await
            .as_array()
            .unwrap()
            .clone()
    }

    /// Polls the instance until `check` holds.
    pub async fn wait_instance(
        &self,
        id: &str,
        what: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let mi = self.get(&format!("/20190801/managedInstances/{id}")).await;
            if check(&mi) {
                return mi;
            }
            assert!(
                Instant::now() < deadline,
                "instance never showed {what}: {mi}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Osmd {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn agent_bin() -> &'static str {
    env!("CARGO_BIN_EXE_osm-agent")
}

/// The agent's command line for a root and state directory, with short test intervals.
pub fn agent_cmd(osmd: &Osmd, root: &Path, state: &Path, sub: &str) -> Command {
    let mut c = Command::new(agent_bin());
    c.arg(sub)
        .arg("--server")
        .arg(osmd.url())
        .arg("--ca")
        .arg(osmd.ca())
        .arg("--install-key")
        .arg(osmd.install_key())
        .arg("--state-dir")
        .arg(state)
        .arg("--root")
        .arg(root)
        .env("OSM_AGENT_HEARTBEAT_SECS", "1")
        .env("OSM_AGENT_POLL_WAIT_SECS", "2")
        .env("OSM_AGENT_LOCK_WAIT_SECS", "3")
        .env("OSM_AGENT_MAX_BACKOFF_SECS", "2")
        .env("RUST_LOG", "info");
    c
}

/// A running agent in its own process group (so a test can kill it with its children).
pub struct AgentProc {
    pub child: Child,
    pub log: PathBuf,
}

impl AgentProc {
    pub fn spawn(mut cmd: Command, log: PathBuf) -> AgentProc {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = cmd
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .process_group(0)
            .spawn()
            .unwrap();
        AgentProc { child, log }
    }

    /// SIGKILL to the agent and everything it started (apt, dpkg, maintainer scripts).
    pub fn kill_all(&mut self) {
        let pgid = self.child.id() as i32;
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        self.child.wait().unwrap();
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for AgentProc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill_all();
        }
    }
}

/// Holds a POSIX write lock on a file (as dpkg and apt do) until dropped.
pub struct HeldLock(std::fs::File);

pub fn hold_fcntl_lock(path: &Path) -> HeldLock {
    use std::os::fd::AsRawFd;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .unwrap();
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as _;
    fl.l_whence = libc::SEEK_SET as _;
    let rc = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETLK, &fl) };
    assert_eq!(rc, 0, "could not lock {}", path.display());
    HeldLock(f)
}

/// A package of a test rpm repository: `(name, version)`, release 1, noarch.
pub struct Rpm {
    pub name: &'static str,
    pub version: &'static str,
}

const RPM_SPEC: &str = "Name: %{pkgname}
Version: %{pkgver}
Release: 1
Summary: osm-agent test package
License: MIT
BuildArch: noarch

%description
osm-agent test package.

%install
mkdir -p %{buildroot}/usr/share/%{name}
echo %{version} > %{buildroot}/usr/share/%{name}/version

%files
/usr/share/%{name}/version
";

/// Builds the packages with rpmbuild into `repo`, indexes them with createrepo_c and adds
/// `updateinfo` (an updateinfo.xml document) with modifyrepo_c.
pub fn build_rpm_repo(repo: &Path, rpms: &[Rpm], updateinfo: &str) {
    let work = repo.with_extension("build");
    std::fs::create_dir_all(&work).unwrap();
    let spec = work.join("pkg.spec");
    std::fs::write(&spec, RPM_SPEC).unwrap();
    for r in rpms {
        run(Command::new("rpmbuild")
            .args(["-bb", "--quiet", "--define"])
            .arg(format!("_topdir {}", work.display()))
            .arg("--define")
            .arg(format!("_rpmdir {}", repo.display()))
            .args(["--define", &format!("pkgname {}", r.name)])
            .args(["--define", &format!("pkgver {}", r.version)])
            .arg(&spec)
            .env("HOME", "/root"));
    }
    run(Command::new("createrepo_c").arg("--quiet").arg(repo));
    let xml = work.join("updateinfo.xml");
    std::fs::write(&xml, updateinfo).unwrap();
    run(Command::new("modifyrepo_c")
        .arg("--mdtype=updateinfo")
        .arg(&xml)
        .arg(repo.join("repodata")));
}

/// An empty install root for dnf: its configuration names only `repo`, and its os-release
/// says Oracle Linux 9.
pub fn rpm_root(root: &Path, repo: &Path) {
    std::fs::create_dir_all(root.join("etc/yum.repos.d")).unwrap();
    std::fs::create_dir_all(root.join("etc/dnf")).unwrap();
    std::fs::write(root.join("etc/dnf/dnf.conf"), "[main]\ngpgcheck=0\n").unwrap();
    std::fs::write(
        root.join("etc/yum.repos.d/osmtest.repo"),
        format!(
            "[osmtest]\nname=osm test repository\nbaseurl=file://{}\ngpgcheck=0\n",
            repo.display()
        ),
    )
    .unwrap();
    std::fs::write(
        root.join("etc/os-release"),
        "NAME=\"Oracle Linux Server\"\nVERSION=\"9.4\"\nID=\"ol\"\nVERSION_ID=\"9.4\"\n",
    )
    .unwrap();
}

// Debian's rpm keeps its database in `~/.rpmdb` (of the install root): the helpers below set
// HOME=/root, as the agent does for the commands it runs.

/// The host's dnf on an install root, panicking on failure; returns stdout.
pub fn dnf(root: &Path, args: &[&str]) -> String {
    run(Command::new("dnf")
        .arg(format!("--installroot={}", root.display()))
        .args(args)
        .env("HOME", "/root")
        .env("LC_ALL", "C"))
}

/// `name → version-release` of the packages rpm has installed in an install root.
pub fn rpm_installed(root: &Path) -> std::collections::BTreeMap<String, String> {
    run(Command::new("rpm")
        .arg("--root")
        .arg(root)
        .args(["-qa", "--qf", "%{NAME} %{VERSION}-%{RELEASE}\\n"])
        .env("HOME", "/root"))
    .lines()
    .filter_map(|l| {
        let (n, v) = l.split_once(' ')?;
        Some((n.to_string(), v.to_string()))
    })
    .collect()
}

/// The instance's available updates through the OCI read API, by package name.
/// The instance's available updates once there are `count` of them: the counts on the
/// instance can come from a heartbeat's facts before the inventory upload that lists them
/// has committed.
pub async fn wait_updates(
    osmd: &Osmd,
    instance: &str,
    count: usize,
) -> std::collections::BTreeMap<String, Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let updates = api_updates(osmd, instance).await;
        if updates.len() == count {
            return updates;
        }
        assert!(
            Instant::now() < deadline,
            "the instance never listed {count} updates: {updates:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub async fn api_updates(osmd: &Osmd, instance: &str) -> std::collections::BTreeMap<String, Value> {
    osmd.get(&format!(
        "/20190801/managedInstances/{instance}/packages/updates?limit=1000"
    ))
    .await
    .as_array()
    .unwrap()
    .iter()
    .map(|u| (u["name"].as_str().unwrap().to_string(), u.clone()))
    .collect()
}
