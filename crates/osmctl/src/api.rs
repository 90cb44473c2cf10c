//! The connection to osmd (config profile, endpoint, CA), the calls, and what failures mean for
//! the exit code.

use std::path::PathBuf;

use osm_client::{ApiResponse, Client, ClientError, OciConfig};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::cli::{Global, Paging, SortBy};

/// Why osmctl stops, and with which exit code.
#[derive(Debug)]
pub enum Failure {
    /// The API answered an error (exit 1).
    Api {
        status: u16,
        code: String,
        message: String,
        request_id: Option<String>,
    },
    /// Bad input caught before anything was sent (exit 2).
    Usage(String),
    /// A waited-for work request did not succeed (exit 3).
    WorkFailed(String),
    /// No usable connection: config, key, CA, endpoint, network or TLS (exit 4).
    Connection(String),
    /// `--timeout` ran out while waiting (exit 5).
    Timeout(String),
}

impl Failure {
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Api { .. } => 1,
            Failure::Usage(_) => 2,
            Failure::WorkFailed(_) => 3,
            Failure::Connection(_) => 4,
            Failure::Timeout(_) => 5,
        }
    }

    /// One line for stderr, after `osmctl: `.
    pub fn line(&self) -> String {
        match self {
            Failure::Api {
                status,
                code,
                message,
                request_id,
            } => {
                let rid = request_id
                    .as_deref()
                    .map(|r| format!(" (request id {r})"))
                    .unwrap_or_default();
                let code = if code.is_empty() {
                    format!("HTTP {status}")
                } else {
                    code.clone()
                };
                format!("{code}: {}{rid}", one_line(message))
            }
            Failure::Usage(m)
            | Failure::WorkFailed(m)
            | Failure::Connection(m)
            | Failure::Timeout(m) => one_line(m),
        }
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// An error and every cause under it, on one line (TLS failures hide deep in the chain).
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let m = cause.to_string();
        if !text.contains(&m) {
            text.push_str(": ");
            text.push_str(&m);
        }
        source = cause.source();
    }
    text
}

/// A signed client for one endpoint, and the profile's tenancy (the default compartment).
pub struct Api {
    client: Client,
    pub tenancy: String,
    /// Whether a CA bundle was named (else the system's roots are trusted).
    ca_named: bool,
}

/// The CA bundle to trust: `--ca`, then `OSMCTL_CA`, then `REQUESTS_CA_BUNDLE` (what users of
/// the oci SDK against osmd already set), then the profile's `ca_bundle=`.
fn ca_file(global: &Global, config: &OciConfig) -> Option<PathBuf> {
    global
        .ca
        .clone()
        .or_else(|| {
            ["OSMCTL_CA", "REQUESTS_CA_BUNDLE"]
                .iter()
                .filter_map(std::env::var_os)
                .find(|v| !v.is_empty())
                .map(PathBuf::from)
        })
        .or_else(|| config.ca_bundle.clone())
}

/// Said after a certificate error when no CA was named: how to trust osmd's.
const CA_HINT: &str = "; osmd's certificate chains to its own CA (<data-dir>/tls/ca.pem): name \
     it with --ca FILE, OSMCTL_CA, REQUESTS_CA_BUNDLE or ca_bundle= in the profile";

fn config_file(global: &Global) -> PathBuf {
    global.config.clone().unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".oci/config")
    })
}

impl Api {
    pub fn connect(global: &Global) -> Result<Api, Failure> {
        let path = config_file(global);
        let config = OciConfig::load(&path, &global.profile).map_err(client_failure)?;
        if global.endpoint.is_none() && config.endpoint_from_region().is_none() {
            return Err(Failure::Connection(format!(
                "no endpoint: profile [{}] of {} has region={:?}, not @host:port; give --endpoint \
                 or OSMCTL_ENDPOINT",
                global.profile,
                path.display(),
                config.region.as_deref().unwrap_or("")
            )));
        }
        let ca = ca_file(global, &config);
        let client = Client::from_config(&config, ca.as_deref(), global.endpoint.as_deref())
            .map_err(client_failure)?;
        Ok(Api {
            client,
            tenancy: config.tenancy,
            ca_named: ca.is_some(),
        })
    }

    pub fn endpoint(&self) -> &str {
        self.client.base_url()
    }

    fn sent(&self, r: Result<ApiResponse, ClientError>) -> Result<ApiResponse, Failure> {
        let resp = r.map_err(|e| match e {
            ClientError::Http(e) => {
                let why = chain(&e);
                let hint = if !self.ca_named && why.contains("certificate") {
                    CA_HINT
                } else {
                    ""
                };
                Failure::Connection(format!("cannot reach {}: {why}{hint}", self.endpoint()))
            }
            other => client_failure(other),
        })?;
        if (200..300).contains(&resp.status) {
            return Ok(resp);
        }
        let body: Value = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
        let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
        Err(Failure::Api {
            status: resp.status,
            code: text("code").unwrap_or_default(),
            message: text("message").unwrap_or_else(|| resp.text()),
            request_id: resp.request_id().map(str::to_string),
        })
    }

    pub async fn get(&self, path: &str) -> Result<ApiResponse, Failure> {
        self.sent(self.client.get(path).await)
    }

    pub async fn post(&self, path: &str, body: Option<&Value>) -> Result<ApiResponse, Failure> {
        self.sent(self.client.post_json(path, body, &[]).await)
    }

    pub async fn post_if_match(
        &self,
        path: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Result<ApiResponse, Failure> {
        let headers: Vec<(&str, &str)> =
            if_match.map(|t| vec![("if-match", t)]).unwrap_or_default();
        self.sent(self.client.post_json(path, body, &headers).await)
    }

    pub async fn put(
        &self,
        path: &str,
        body: &Value,
        if_match: Option<&str>,
    ) -> Result<ApiResponse, Failure> {
        let headers: Vec<(&str, &str)> =
            if_match.map(|t| vec![("if-match", t)]).unwrap_or_default();
        self.sent(self.client.put_json(path, Some(body), &headers).await)
    }

    pub async fn delete(&self, path: &str, if_match: Option<&str>) -> Result<ApiResponse, Failure> {
        self.sent(self.client.delete(path, if_match).await)
    }

    /// A list call: one page (`--limit`/`--page`, the next page's token on stderr) or every
    /// page (`--all`). Rows stay exactly as the API sent them.
    pub async fn list(
        &self,
        base: &str,
        mut query: Query,
        paging: &Paging,
        name_key: &str,
    ) -> Result<Vec<Box<RawValue>>, Failure> {
        query.opt("limit", paging.limit);
        query.opt(
            "sortBy",
            paging.sort_by.map(|s| match s {
                SortBy::TimeCreated => "TIMECREATED",
                SortBy::Name => name_key,
            }),
        );
        query.opt("sortOrder", paging.sort_order.map(|s| s.wire()));
        let mut rows = Vec::new();
        let mut page = paging.page.clone();
        loop {
            let mut q = query.clone();
            q.opt("page", page.as_deref());
            let resp = self.get(&q.path(base)).await?;
            let batch: Vec<Box<RawValue>> = serde_json::from_slice(&resp.body).map_err(|e| {
                Failure::Connection(format!(
                    "{base} answered something other than a JSON array: {e}"
                ))
            })?;
            rows.extend(batch);
            match resp.next_page() {
                Some(next) if paging.all => page = Some(next.to_string()),
                Some(next) => {
                    eprintln!("osmctl: more rows follow; next page: --page {next}");
                    break;
                }
                None => break,
            }
        }
        Ok(rows)
    }
}

fn client_failure(e: ClientError) -> Failure {
    Failure::Connection(match e {
        ClientError::Http(e) => chain(&e),
        other => other.to_string(),
    })
}

/// A query string, encoded the way the SDK's `requests` encodes it.
#[derive(Debug, Clone, Default)]
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn new() -> Query {
        Query::default()
    }

    pub fn set(&mut self, key: &str, value: impl ToString) -> &mut Query {
        self.0.push((key.to_string(), value.to_string()));
        self
    }

    pub fn opt(&mut self, key: &str, value: Option<impl ToString>) -> &mut Query {
        if let Some(v) = value {
            self.set(key, v);
        }
        self
    }

    pub fn path(&self, base: &str) -> String {
        if self.0.is_empty() {
            return base.to_string();
        }
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &self.0 {
            s.append_pair(k, v);
        }
        format!("{base}?{}", s.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_form_encoded() {
        let mut q = Query::new();
        q.set("compartmentId", "ocid1.tenancy.oc1..a")
            .opt("displayName", Some("a b&c"))
            .opt("limit", None::<u32>)
            .set("timeEnd", "2030-01-01T00:00:00Z");
        assert_eq!(
            q.path("/x"),
            "/x?compartmentId=ocid1.tenancy.oc1..a&displayName=a+b%26c&timeEnd=2030-01-01T00%3A00%3A00Z"
        );
        assert_eq!(Query::new().path("/x"), "/x");
    }

    #[test]
    fn api_errors_are_one_line_with_the_request_id() {
        let f = Failure::Api {
            status: 404,
            code: "NotAuthorizedOrNotFound".into(),
            message: "scheduled job x\nnot found".into(),
            request_id: Some("ABC".into()),
        };
        assert_eq!(
            f.line(),
            "NotAuthorizedOrNotFound: scheduled job x not found (request id ABC)"
        );
        assert_eq!(f.exit_code(), 1);
        let bare = Failure::Api {
            status: 502,
            code: String::new(),
            message: "bad gateway".into(),
            request_id: None,
        };
        assert_eq!(bare.line(), "HTTP 502: bad gateway");
    }
}
