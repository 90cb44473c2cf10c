//! First start on an empty store: the tenancy, an administrator with an API key, and the
//! files an operator needs to reach osmd with unmodified OCI tools.
//!
//! Crash safety: the key files are written (atomically) before the store commits the
//! administrator, so a committed administrator always has its key on disk; a crash before the
//! commit leaves files that the next start overwrites.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use jiff::Timestamp;
use osm_core::ids::{ResourceKind, new_ocid};
use osm_core::{ApiKey, Bootstrap, Compartment, CompartmentState, Group, User};
use osm_store::Store;

use crate::fsutil::{write_atomic, write_private};

pub struct AdminPaths {
    pub config: PathBuf,
    pub private_key: PathBuf,
    pub public_key: PathBuf,
}

impl AdminPaths {
    pub fn new(data_dir: &Path) -> Self {
        let dir = data_dir.join("admin");
        AdminPaths {
            config: dir.join("config"),
            private_key: dir.join("api_key.pem"),
            public_key: dir.join("api_key_public.pem"),
        }
    }
}

/// The `region` value that makes an unmodified SDK connect to `listen` (the URL-userinfo
/// form `@host:port`, see the wire reference §9.2 G).
pub fn region_for(listen: SocketAddr) -> String {
    let ip = match listen.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_string(),
        ip if ip.is_unspecified() => "[::1]".to_string(),
        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
        std::net::IpAddr::V4(v4) => v4.to_string(),
    };
    format!("@{ip}:{}", listen.port())
}

pub struct Outcome {
    pub tenancy_id: String,
    /// Whether this start created the tenancy.
    pub created: bool,
}

/// Ensures the store has a tenancy and, when this start creates it, writes the
/// administrator's OCI config and key into `<data-dir>/admin/`.
pub async fn ensure(
    store: &dyn Store,
    data_dir: &Path,
    listen: SocketAddr,
) -> anyhow::Result<Outcome> {
    let paths = AdminPaths::new(data_dir);
    if let Some(tenancy) = store.tenancy_get().await? {
        refresh_region(&paths.config, listen)?;
        return Ok(Outcome {
            tenancy_id: tenancy.id,
            created: false,
        });
    }
    let now = Timestamp::now();
    let (private_pem, public_pem) =
        osm_core::httpsig::generate_rsa_key().context("generating the administrator's API key")?;
    let fingerprint = osm_core::httpsig::fingerprint(&public_pem)?;
    let tenancy = Compartment {
        id: new_ocid(ResourceKind::Tenancy),
        parent_id: None,
        name: "osm".into(),
        description: "The osm tenancy (root compartment)".into(),
        lifecycle_state: CompartmentState::Active,
        time_created: now,
        freeform_tags: Default::default(),
        defined_tags: Default::default(),
        version: 1,
    };
    let admin = User {
        id: new_ocid(ResourceKind::User),
        tenancy_id: tenancy.id.clone(),
        name: "admin".into(),
        description: "Administrator created on first start".into(),
        time_created: now,
    };
    let admin_key = ApiKey {
        user_id: admin.id.clone(),
        fingerprint: fingerprint.clone(),
        public_key_pem: public_pem.clone(),
        time_created: now,
    };
    let admin_group = Group {
        id: new_ocid(ResourceKind::Group),
        name: "Administrators".into(),
        description: "Full access to the tenancy".into(),
        time_created: now,
    };

    write_private(&paths.private_key, private_pem.as_bytes())?;
    write_atomic(&paths.public_key, public_pem.as_bytes(), 0o644)?;
    let key_file = std::fs::canonicalize(&paths.private_key)?;
    let config = format!(
        "[DEFAULT]\nuser={}\nfingerprint={}\nkey_file={}\ntenancy={}\nregion={}\n",
        admin.id,
        fingerprint,
        key_file.display(),
        tenancy.id,
        region_for(listen)
    );
    write_private(&paths.config, config.as_bytes())?;

    let bootstrap = Bootstrap {
        tenancy: tenancy.clone(),
        admin,
        admin_key,
        admin_group,
    };
    if store.bootstrap(&bootstrap).await? {
        write_install_key(store, data_dir, &tenancy.id).await?;
        return Ok(Outcome {
            tenancy_id: tenancy.id,
            created: true,
        });
    }
    // Another osmd replica bootstrapped the same database first: our files describe an
    // administrator that does not exist.
    for path in [&paths.config, &paths.private_key, &paths.public_key] {
        let _ = std::fs::remove_file(path);
    }
    let tenancy = store
        .tenancy_get()
        .await?
        .context("the store reported a tenancy but none can be read")?;
    Ok(Outcome {
        tenancy_id: tenancy.id,
        created: false,
    })
}

/// Creates an agent install key for the root compartment and writes it to
/// `<data-dir>/admin/install-key` (mode 0600).
async fn write_install_key(
    store: &dyn Store,
    data_dir: &Path,
    tenancy_id: &str,
) -> anyhow::Result<()> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| anyhow::anyhow!("no system randomness"))?;
    use base64::Engine;
    let secret = format!(
        "osmik_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let key = osm_core::InstallKey {
        id: new_ocid(ResourceKind::InstallKey),
        compartment_id: tenancy_id.to_string(),
        display_name: "root compartment (first start)".into(),
        time_created: Timestamp::now(),
        time_revoked: None,
    };
    store
        .install_key_create(&key, &crate::app::agents::hash_secret(&secret))
        .await?;
    write_private(
        &data_dir.join("admin").join("install-key"),
        format!("{secret}\n").as_bytes(),
    )?;
    Ok(())
}

/// Keeps the administrator's config pointing at the address osmd listens on now.
fn refresh_region(config: &Path, listen: SocketAddr) -> anyhow::Result<()> {
    let Ok(text) = std::fs::read_to_string(config) else {
        return Ok(());
    };
    let wanted = format!("region={}", region_for(listen));
    if text.lines().any(|l| l.trim() == wanted) {
        return Ok(());
    }
    let updated: Vec<String> = text
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("region=") && l.contains('@') {
                wanted.clone()
            } else {
                l.to_string()
            }
        })
        .collect();
    write_private(config, (updated.join("\n") + "\n").as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_uses_userinfo_form() {
        assert_eq!(
            region_for("127.0.0.1:9443".parse().unwrap()),
            "@127.0.0.1:9443"
        );
        assert_eq!(
            region_for("0.0.0.0:8443".parse().unwrap()),
            "@127.0.0.1:8443"
        );
        assert_eq!(region_for("[::1]:9443".parse().unwrap()), "@[::1]:9443");
    }
}
