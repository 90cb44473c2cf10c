//! A signed HTTPS client for osmd. It reads OCI config profiles, trusts only the CA it is
//! given, and signs every request exactly as the `oci` SDK does, so whatever it can do an
//! unmodified SDK script can do too. Used by the integration tests and benchmarks, and by the
//! agent and `osmctl`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jiff::Timestamp;
use osm_core::httpsig::{self, SigningKey};
use reqwest::header::HeaderMap;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("config file {path}: {message}")]
    Config { path: String, message: String },
    #[error("{0}")]
    Key(String),
    #[error("{0}")]
    Invalid(String),
    #[error("request failed: {0}")]
    Http(#[from] reqwest::Error),
}

/// One profile of an OCI config file (`~/.oci/config` format).
#[derive(Debug, Clone, PartialEq)]
pub struct OciConfig {
    pub user: String,
    pub fingerprint: String,
    pub key_file: PathBuf,
    pub tenancy: String,
    pub region: Option<String>,
    pub pass_phrase: Option<String>,
    /// `ca_bundle=` (an osm extension the oci SDK and CLI ignore): the CA bundle osmctl trusts
    /// when no flag or environment variable names one; relative to the config file's folder.
    pub ca_bundle: Option<PathBuf>,
}

impl OciConfig {
    /// Reads `profile` from the file; values of `[DEFAULT]` apply to every profile.
    pub fn load(path: &Path, profile: &str) -> Result<OciConfig, ClientError> {
        let err = |message: String| ClientError::Config {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let sections = parse_ini(&text);
        let default = sections.get("DEFAULT").cloned().unwrap_or_default();
        let mut values = default;
        if profile != "DEFAULT" {
            let own = sections
                .get(profile)
                .ok_or_else(|| err(format!("has no profile [{profile}]")))?;
            values.extend(own.clone());
        } else if !sections.contains_key("DEFAULT") {
            return Err(err("has no profile [DEFAULT]".into()));
        }
        let need = |k: &str| {
            values
                .get(k)
                .cloned()
                .ok_or_else(|| err(format!("profile [{profile}] lacks {k}")))
        };
        let home = |p: &str| match p.strip_prefix("~/") {
            Some(rest) => PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(rest),
            None => PathBuf::from(p),
        };
        let key_file = home(&need("key_file")?);
        let ca_bundle = values.get("ca_bundle").filter(|v| !v.is_empty()).map(|v| {
            let file = home(v);
            match path.parent() {
                Some(dir) if file.is_relative() => dir.join(file),
                _ => file,
            }
        });
        Ok(OciConfig {
            user: need("user")?,
            fingerprint: need("fingerprint")?,
            key_file,
            tenancy: need("tenancy")?,
            region: values.get("region").cloned(),
            pass_phrase: values.get("pass_phrase").cloned(),
            ca_bundle,
        })
    }

    /// The endpoint the URL-userinfo form `region=@host:port` points at.
    pub fn endpoint_from_region(&self) -> Option<String> {
        let region = self.region.as_deref()?;
        let host = region.strip_prefix('@')?;
        Some(format!("https://{host}"))
    }
}

fn parse_ini(text: &str) -> HashMap<String, HashMap<String, String>> {
    let mut sections: HashMap<String, HashMap<String, String>> = HashMap::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name.trim().to_string();
            sections.entry(current.clone()).or_default();
        } else if let Some((k, v)) = line.split_once('=') {
            sections
                .entry(current.clone())
                .or_default()
                .insert(k.trim().to_string(), v.trim().to_string());
        }
    }
    sections
}

/// A response: status, headers and the raw body.
#[derive(Debug, Clone)]
pub struct ApiResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl ApiResponse {
    /// The body as JSON. Panics with the body text when it is not `T` (for tests and tools
    /// that checked the status first; use `serde_json::from_slice` to handle errors).
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> T {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "response body is not the expected JSON ({e}): {}",
                self.text()
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn next_page(&self) -> Option<&str> {
        self.header("opc-next-page")
    }

    pub fn request_id(&self) -> Option<&str> {
        self.header("opc-request-id")
    }
}

/// Signed client for one osmd endpoint.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    host: String,
    key_id: String,
    key: Arc<SigningKey>,
}

impl Client {
    /// `endpoint` like `https://127.0.0.1:9443`; `ca_pem` the only CA trusted (system roots
    /// are used when `None`).
    pub fn new(
        endpoint: &str,
        ca_pem: Option<&[u8]>,
        key_id: String,
        private_key_pem: &str,
    ) -> Result<Client, ClientError> {
        let url = reqwest::Url::parse(endpoint)
            .map_err(|e| ClientError::Invalid(format!("endpoint {endpoint:?}: {e}")))?;
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            _ => {
                return Err(ClientError::Invalid(format!(
                    "endpoint {endpoint:?} has no host"
                )));
            }
        };
        let mut builder = reqwest::Client::builder().pool_max_idle_per_host(32);
        if let Some(ca) = ca_pem {
            let cert = reqwest::Certificate::from_pem(ca)
                .map_err(|e| ClientError::Invalid(format!("CA bundle: {e}")))?;
            builder = builder.tls_certs_only([cert]);
        }
        Ok(Client {
            http: builder.build()?,
            base: endpoint.trim_end_matches('/').to_string(),
            host,
            key_id,
            key: Arc::new(
                SigningKey::from_pem(private_key_pem)
                    .map_err(|e| ClientError::Key(e.to_string()))?,
            ),
        })
    }

    /// From a config profile; the endpoint defaults to the one `region=@host:port` names.
    pub fn from_config(
        config: &OciConfig,
        ca_file: Option<&Path>,
        endpoint: Option<&str>,
    ) -> Result<Client, ClientError> {
        let endpoint = match endpoint {
            Some(e) => e.to_string(),
            None => config.endpoint_from_region().ok_or_else(|| {
                ClientError::Invalid(
                    "no endpoint given and the profile's region is not of the form @host:port"
                        .into(),
                )
            })?,
        };
        let ca = ca_file
            .map(|p| {
                std::fs::read(p)
                    .map_err(|e| ClientError::Invalid(format!("CA file {}: {e}", p.display())))
            })
            .transpose()?;
        let key_pem = std::fs::read_to_string(&config.key_file).map_err(|e| {
            ClientError::Key(format!("key file {}: {e}", config.key_file.display()))
        })?;
        let key_id = format!("{}/{}/{}", config.tenancy, config.user, config.fingerprint);
        Client::new(&endpoint, ca.as_deref(), key_id, &key_pem)
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    pub async fn get(&self, path: &str) -> Result<ApiResponse, ClientError> {
        self.send("GET", path, None, &[]).await
    }

    pub async fn delete(
        &self,
        path: &str,
        if_match: Option<&str>,
    ) -> Result<ApiResponse, ClientError> {
        let headers: Vec<(&str, &str)> =
            if_match.map(|t| vec![("if-match", t)]).unwrap_or_default();
        self.send("DELETE", path, None, &headers).await
    }

    pub async fn post_json(
        &self,
        path: &str,
        body: Option<&serde_json::Value>,
        headers: &[(&str, &str)],
    ) -> Result<ApiResponse, ClientError> {
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        self.send("POST", path, Some(bytes), headers).await
    }

    /// POST with a body sent byte for byte (tests of malformed input).
    pub async fn post_raw(
        &self,
        path: &str,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> Result<ApiResponse, ClientError> {
        self.send("POST", path, Some(body), headers).await
    }

    pub async fn put_json(
        &self,
        path: &str,
        body: Option<&serde_json::Value>,
        headers: &[(&str, &str)],
    ) -> Result<ApiResponse, ClientError> {
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        self.send("PUT", path, Some(bytes), headers).await
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
        extra: &[(&str, &str)],
    ) -> Result<ApiResponse, ClientError> {
        let date = httpsig::imf_fixdate(Timestamp::now());
        let mut signed: Vec<(&str, String)> = vec![("date", date), ("host", self.host.clone())];
        let body_bytes = body.unwrap_or_default();
        let has_body = matches!(method, "POST" | "PUT" | "PATCH");
        if has_body {
            signed.push(("content-length", body_bytes.len().to_string()));
            signed.push(("content-type", "application/json".to_string()));
            signed.push(("x-content-sha256", httpsig::body_digest(&body_bytes)));
        }
        let pairs: Vec<(&str, &str)> = signed.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let authorization = self.key.sign(method, path, &pairs, &self.key_id);
        let method = reqwest::Method::from_bytes(method.as_bytes())
            .map_err(|e| ClientError::Invalid(e.to_string()))?;
        let mut req = self
            .http
            .request(method, format!("{}{}", self.base, path))
            .header("authorization", authorization)
            .header("accept", "application/json")
            .header("content-type", "application/json")
            .header("opc-request-id", request_id());
        for (k, v) in &signed {
            // reqwest leaves out `content-length: 0` on empty bodies, but it is signed.
            if *k != "host" {
                req = req.header(*k, v);
            }
        }
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        if has_body {
            req = req.body(body_bytes);
        }
        let resp = req.send().await?;
        Ok(ApiResponse {
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            body: resp.bytes().await?.to_vec(),
        })
    }
}

/// 32 upper-case hex characters, like the SDK's.
fn request_id() -> String {
    use std::fmt::Write;
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).expect("system randomness");
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02X}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_profiles_with_default_inheritance() {
        let dir = std::env::temp_dir().join(format!("osm-client-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("config");
        std::fs::write(
            &path,
            "[DEFAULT]\nuser=ocid1.user.oc1..u\nfingerprint=aa\nkey_file=~/k.pem\ntenancy=ocid1.tenancy.oc1..t\nregion=@127.0.0.1:9443\n\n[OTHER]\nuser=ocid1.user.oc1..other\n# comment\n[BROKEN]\nregion=x\n",
        )
        .unwrap();
        let d = OciConfig::load(&path, "DEFAULT").unwrap();
        assert_eq!(
            d.endpoint_from_region().as_deref(),
            Some("https://127.0.0.1:9443")
        );
        assert!(d.key_file.ends_with("k.pem") && !d.key_file.starts_with("~"));
        let o = OciConfig::load(&path, "OTHER").unwrap();
        assert_eq!(o.user, "ocid1.user.oc1..other");
        assert_eq!(o.tenancy, d.tenancy);
        let err = OciConfig::load(&path, "MISSING").unwrap_err().to_string();
        assert!(err.contains("no profile [MISSING]"), "{err}");
        std::fs::write(&path, "[DEFAULT]\nuser=u\n").unwrap();
        let err = OciConfig::load(&path, "DEFAULT").unwrap_err().to_string();
        assert!(err.contains("lacks"), "{err}");
        assert!(OciConfig::load(&dir.join("none"), "DEFAULT").is_err());
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn request_ids_look_like_the_sdk_ones() {
        let id = request_id();
        assert_eq!(id.len(), 32);
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
        );
    }
}

/// A client for the agent protocol (`/agent/v1/…`): enrols with an install key, then signs
/// every call with HMAC-SHA256 and the secret enrolment returned.
#[derive(Clone)]
pub struct AgentClient {
    http: reqwest::Client,
    base: String,
    pub instance_id: String,
    secret: String,
}

impl AgentClient {
    /// An HTTP client keeping at most `idle` connections to osmd open between calls.
    fn http(ca_pem: Option<&[u8]>, idle: usize) -> Result<reqwest::Client, ClientError> {
        let mut builder = reqwest::Client::builder().pool_max_idle_per_host(idle);
        if let Some(ca) = ca_pem {
            let cert = reqwest::Certificate::from_pem(ca)
                .map_err(|e| ClientError::Invalid(format!("CA bundle: {e}")))?;
            builder = builder.tls_certs_only([cert]);
        }
        Ok(builder.build()?)
    }

    /// Enrols a host; returns the client and the server's answer (instance id, compartment).
    pub async fn enroll(
        endpoint: &str,
        ca_pem: Option<&[u8]>,
        install_key: &str,
        body: &serde_json::Value,
    ) -> Result<(AgentClient, serde_json::Value), ClientError> {
        Self::enroll_with(Self::http(ca_pem, 4)?, endpoint, install_key, body).await
    }

    /// The HTTP client agents of one process can share (one connection pool). Each agent
    /// keeps its connection between calls, as a lone agent does: a pool holding fewer idle
    /// connections than it has agents closes the surplus after every call, and each closed
    /// one costs the next call a TLS handshake, on osmd's cores as well.
    pub fn shared_http(ca_pem: Option<&[u8]>) -> Result<reqwest::Client, ClientError> {
        Self::http(ca_pem, usize::MAX)
    }

    /// [`AgentClient::enroll`] over an existing HTTP client.
    pub async fn enroll_with(
        http: reqwest::Client,
        endpoint: &str,
        install_key: &str,
        body: &serde_json::Value,
    ) -> Result<(AgentClient, serde_json::Value), ClientError> {
        let base = endpoint.trim_end_matches('/').to_string();
        let resp = http
            .post(format!("{base}/agent/v1/enroll"))
            .header("authorization", format!("OsmInstallKey {install_key}"))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await?;
        let status = resp.status();
        let answer: serde_json::Value = resp.json().await?;
        if !status.is_success() {
            return Err(ClientError::Invalid(format!(
                "enrolment refused ({status}): {}",
                answer["message"]
            )));
        }
        let field = |k: &str| {
            answer[k]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| ClientError::Invalid(format!("enrolment answer lacks {k}")))
        };
        Ok((
            AgentClient {
                http,
                base,
                instance_id: field("instanceId")?,
                secret: field("secret")?,
            },
            answer,
        ))
    }

    /// A client for an instance that enrolled earlier (its identity kept on disk).
    pub fn resume(
        endpoint: &str,
        ca_pem: Option<&[u8]>,
        instance_id: &str,
        secret: &str,
    ) -> Result<AgentClient, ClientError> {
        Ok(AgentClient {
            http: Self::http(ca_pem, 4)?,
            base: endpoint.trim_end_matches('/').to_string(),
            instance_id: instance_id.to_string(),
            secret: secret.to_string(),
        })
    }

    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// A signed POST of `body` to `path` (e.g. `/agent/v1/heartbeat`).
    pub async fn post(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<ApiResponse, ClientError> {
        let bytes = body.to_string().into_bytes();
        let date = httpsig::imf_fixdate(Timestamp::now());
        let digest = httpsig::body_digest(&bytes);
        let message = format!("{date}\npost {path}\n{digest}");
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, self.secret.as_bytes());
        use base64::Engine;
        let signature = base64::engine::general_purpose::STANDARD
            .encode(aws_lc_rs::hmac::sign(&key, message.as_bytes()).as_ref());
        let resp = self
            .http
            .post(format!("{}{}", self.base, path))
            .header(
                "authorization",
                format!("OsmAgent {}:{signature}", self.instance_id),
            )
            .header("date", date)
            .header("x-content-sha256", digest)
            .header("content-type", "application/json")
            .body(bytes)
            .send()
            .await?;
        Ok(ApiResponse {
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            body: resp.bytes().await?.to_vec(),
        })
    }
}
