//! OCI request signatures: draft-cavage HTTP Signatures with RSA-SHA256, as the `oci` SDK
//! makes them (wire reference §6).
//!
//! Verification rebuilds the signing string from the values received, in the order the
//! `headers` parameter lists them: `(request-target)` is the lower-cased method and the raw
//! path and query exactly as they arrived, every other entry is the named header's value.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use jiff::{SignedDuration, Timestamp};

/// How far a request's `date` may be from the server's clock.
pub const MAX_SKEW: SignedDuration = SignedDuration::from_mins(5);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigError {
    #[error("the Authorization header must use the Signature scheme")]
    NotSignature,
    #[error("the Authorization header is malformed: {0}")]
    Malformed(String),
    #[error("the Authorization header is missing the {0} parameter")]
    MissingParam(&'static str),
    #[error("unsupported signature algorithm {0:?}; only rsa-sha256 is accepted")]
    Algorithm(String),
    #[error("the keyId {0:?} is not of the form <tenancy OCID>/<user OCID>/<key fingerprint>")]
    KeyId(String),
    #[error("the signature must cover the {0} header")]
    HeaderNotSigned(&'static str),
    #[error("the signed header {0} is missing from the request")]
    MissingHeader(String),
    #[error("the {0} header is not a valid date such as 'Tue, 24 Nov 2026 18:21:31 GMT'")]
    BadDate(&'static str),
    #[error(
        "the date header is {0} minutes away from the server's clock (at most 5 are allowed); check the client's clock"
    )]
    Skew(i64),
    #[error("the signature does not match the request")]
    BadSignature,
    #[error("x-content-sha256 does not match the request body")]
    BodyDigest,
    #[error("content-length does not match the request body")]
    BodyLength,
    #[error("invalid key: {0}")]
    Key(String),
}

/// The three parts of a signature's keyId.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyId {
    pub tenancy: String,
    pub user: String,
    pub fingerprint: String,
}

/// A parsed `Authorization: Signature …` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub key_id: KeyId,
    pub algorithm: String,
    /// Lower-cased names of the signed headers, in signing order.
    pub headers: Vec<String>,
    pub signature: Vec<u8>,
}

/// Looks up request headers by lower-case name.
pub trait HeaderSource {
    fn header(&self, name: &str) -> Option<&str>;
}

impl HeaderSource for [(String, String)] {
    fn header(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl HeaderSource for Vec<(String, String)> {
    fn header(&self, name: &str) -> Option<&str> {
        self.as_slice().header(name)
    }
}

fn is_fingerprint(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    parts.len() == 16
        && parts.iter().all(|p| {
            p.len() == 2
                && p.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
}

pub fn parse_key_id(value: &str) -> Result<KeyId, SigError> {
    let parts: Vec<&str> = value.split('/').collect();
    match parts.as_slice() {
        [t, u, f] if !t.is_empty() && !u.is_empty() && is_fingerprint(f) => Ok(KeyId {
            tenancy: t.to_string(),
            user: u.to_string(),
            fingerprint: f.to_string(),
        }),
        _ => Err(SigError::KeyId(value.chars().take(200).collect())),
    }
}

/// Parses `Signature k="v",k="v",…` (parameters in any order).
pub fn parse_authorization(value: &str) -> Result<Authorization, SigError> {
    let rest = value
        .trim()
        .strip_prefix("Signature")
        .ok_or(SigError::NotSignature)?;
    if !rest.starts_with(' ') {
        return Err(SigError::NotSignature);
    }
    let mut rest = rest.trim_start();
    let (mut key_id, mut algorithm, mut headers, mut signature) = (None, None, None, None);
    while !rest.is_empty() {
        let eq = rest
            .find('=')
            .ok_or_else(|| SigError::Malformed("expected name=\"value\"".into()))?;
        let name = rest[..eq].trim();
        let after = &rest[eq + 1..];
        let after = after
            .strip_prefix('"')
            .ok_or_else(|| SigError::Malformed(format!("the value of {name} must be quoted")))?;
        let end = after
            .find('"')
            .ok_or_else(|| SigError::Malformed(format!("the value of {name} is not terminated")))?;
        let val = &after[..end];
        match name {
            "keyId" => key_id = Some(val),
            "algorithm" => algorithm = Some(val),
            "headers" => headers = Some(val),
            "signature" => signature = Some(val),
            "version" if val == "1" => {}
            "version" => return Err(SigError::Malformed(format!("unsupported version {val:?}"))),
            _ => {}
        }
        rest = after[end + 1..].trim_start();
        if let Some(r) = rest.strip_prefix(',') {
            rest = r.trim_start();
        } else if !rest.is_empty() {
            return Err(SigError::Malformed(
                "parameters must be separated by commas".into(),
            ));
        }
    }
    let key_id = parse_key_id(key_id.ok_or(SigError::MissingParam("keyId"))?)?;
    let algorithm = algorithm.ok_or(SigError::MissingParam("algorithm"))?;
    if algorithm != "rsa-sha256" {
        return Err(SigError::Algorithm(algorithm.chars().take(40).collect()));
    }
    let headers: Vec<String> = headers
        .ok_or(SigError::MissingParam("headers"))?
        .split_ascii_whitespace()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    let signature = B64
        .decode(signature.ok_or(SigError::MissingParam("signature"))?)
        .map_err(|_| SigError::Malformed("the signature is not valid base64".into()))?;
    Ok(Authorization {
        key_id,
        algorithm: algorithm.to_string(),
        headers,
        signature,
    })
}

/// The string that is signed: one `name: value` line per signed header, joined by `\n`.
pub fn signing_string(
    signed: &[String],
    method: &str,
    request_target: &str,
    headers: &dyn HeaderSource,
) -> Result<String, SigError> {
    let mut lines = Vec::with_capacity(signed.len());
    for name in signed {
        if name == "(request-target)" {
            lines.push(format!(
                "(request-target): {} {}",
                method.to_ascii_lowercase(),
                request_target
            ));
        } else {
            let v = headers
                .header(name)
                .ok_or_else(|| SigError::MissingHeader(name.clone()))?;
            lines.push(format!("{name}: {v}"));
        }
    }
    Ok(lines.join("\n"))
}

/// A parsed RSA public key, cheap to share between requests.
#[derive(Debug)]
pub struct VerifyingKey {
    spki_der: Vec<u8>,
    key: aws_lc_rs::signature::UnparsedPublicKey<Vec<u8>>,
}

impl VerifyingKey {
    /// From a `BEGIN PUBLIC KEY` (SubjectPublicKeyInfo) PEM.
    pub fn from_pem(pem_text: &str) -> Result<VerifyingKey, SigError> {
        let spki = pem_der(pem_text, "PUBLIC KEY")?;
        // aws-lc-rs verifies RSA with the PKCS#1 RSAPublicKey inside the SPKI.
        let pkcs1 = spki_to_pkcs1(&spki)?;
        Ok(VerifyingKey {
            spki_der: spki,
            key: aws_lc_rs::signature::UnparsedPublicKey::new(
                &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
                pkcs1,
            ),
        })
    }

    pub fn fingerprint(&self) -> String {
        fingerprint_der(&self.spki_der)
    }

    fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), SigError> {
        self.key
            .verify(message, signature)
            .map_err(|_| SigError::BadSignature)
    }
}

/// Checks the signed header set, the signature and the date of a request.
pub fn verify_with(
    auth: &Authorization,
    method: &str,
    request_target: &str,
    headers: &dyn HeaderSource,
    key: &VerifyingKey,
    now: Timestamp,
) -> Result<(), SigError> {
    let has = |n: &str| auth.headers.iter().any(|h| h == n);
    let date_header = if has("date") {
        "date"
    } else if has("x-date") {
        "x-date"
    } else {
        return Err(SigError::HeaderNotSigned("date"));
    };
    for required in ["(request-target)", "host"] {
        if !has(required) {
            return Err(SigError::HeaderNotSigned(required));
        }
    }
    if matches!(
        method.to_ascii_uppercase().as_str(),
        "POST" | "PUT" | "PATCH"
    ) {
        for required in ["content-length", "content-type", "x-content-sha256"] {
            if !has(required) {
                return Err(SigError::HeaderNotSigned(required));
            }
        }
    }
    let message = signing_string(&auth.headers, method, request_target, headers)?;
    key.verify(message.as_bytes(), &auth.signature)?;
    let date_text = headers
        .header(date_header)
        .ok_or_else(|| SigError::MissingHeader(date_header.into()))?;
    let date = parse_imf_fixdate(date_text).ok_or(SigError::BadDate("date"))?;
    let skew = (now - date).abs();
    if skew > MAX_SKEW {
        return Err(SigError::Skew(skew.as_secs() / 60));
    }
    Ok(())
}

/// [`verify_with`] for a PEM key (parses it on every call).
pub fn verify(
    auth: &Authorization,
    method: &str,
    request_target: &str,
    headers: &dyn HeaderSource,
    public_key_pem: &str,
    now: Timestamp,
) -> Result<(), SigError> {
    verify_with(
        auth,
        method,
        request_target,
        headers,
        &VerifyingKey::from_pem(public_key_pem)?,
        now,
    )
}

/// Checks `x-content-sha256` and `content-length` against the body received.
pub fn verify_body(headers: &dyn HeaderSource, body: &[u8]) -> Result<(), SigError> {
    let digest = headers
        .header("x-content-sha256")
        .ok_or_else(|| SigError::MissingHeader("x-content-sha256".into()))?;
    if digest.trim() != body_digest(body) {
        return Err(SigError::BodyDigest);
    }
    let length = headers
        .header("content-length")
        .ok_or_else(|| SigError::MissingHeader("content-length".into()))?;
    if length.trim().parse::<usize>().ok() != Some(body.len()) {
        return Err(SigError::BodyLength);
    }
    Ok(())
}

/// base64(SHA-256(body)), the value of `x-content-sha256`.
pub fn body_digest(body: &[u8]) -> String {
    B64.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, body).as_ref())
}

/// Signs a request: `signed` lists the headers in signing order as (name, value), not
/// including `(request-target)`, which comes second as the SDK does. Returns the whole
/// `Authorization` value.
pub fn sign(
    method: &str,
    request_target: &str,
    signed: &[(&str, &str)],
    key_id: &str,
    private_key_pem: &str,
) -> Result<String, SigError> {
    let key = SigningKey::from_pem(private_key_pem)?;
    Ok(key.sign(method, request_target, signed, key_id))
}

/// A parsed RSA private key for signing many requests.
pub struct SigningKey(aws_lc_rs::rsa::KeyPair);

impl SigningKey {
    /// From a PKCS#8 (`BEGIN PRIVATE KEY`) or PKCS#1 (`BEGIN RSA PRIVATE KEY`) PEM.
    pub fn from_pem(pem_text: &str) -> Result<SigningKey, SigError> {
        let parsed = pem::parse(pem_text.trim()).map_err(|e| SigError::Key(e.to_string()))?;
        let pair = match parsed.tag() {
            "PRIVATE KEY" => aws_lc_rs::rsa::KeyPair::from_pkcs8(parsed.contents()),
            "RSA PRIVATE KEY" => aws_lc_rs::rsa::KeyPair::from_der(parsed.contents()),
            other => return Err(SigError::Key(format!("unsupported PEM block {other:?}"))),
        }
        .map_err(|e| SigError::Key(e.to_string()))?;
        Ok(SigningKey(pair))
    }

    pub fn sign(
        &self,
        method: &str,
        request_target: &str,
        signed: &[(&str, &str)],
        key_id: &str,
    ) -> String {
        let mut names: Vec<String> = vec![];
        let mut lines: Vec<String> = vec![];
        for (i, (name, value)) in signed.iter().enumerate() {
            let name = name.to_ascii_lowercase();
            lines.push(format!("{name}: {value}"));
            names.push(name);
            if i == 0 {
                names.push("(request-target)".into());
                lines.push(format!(
                    "(request-target): {} {}",
                    method.to_ascii_lowercase(),
                    request_target
                ));
            }
        }
        if signed.is_empty() {
            names.push("(request-target)".into());
            lines.push(format!(
                "(request-target): {} {}",
                method.to_ascii_lowercase(),
                request_target
            ));
        }
        let message = lines.join("\n");
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let mut sig = vec![0u8; self.0.public_modulus_len()];
        self.0
            .sign(
                &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                &rng,
                message.as_bytes(),
                &mut sig,
            )
            .expect("RSA signing does not fail with a valid key");
        format!(
            "Signature algorithm=\"rsa-sha256\",headers=\"{}\",keyId=\"{}\",signature=\"{}\",version=\"1\"",
            names.join(" "),
            key_id,
            B64.encode(sig)
        )
    }
}

/// A new 2048-bit RSA key: (private PKCS#8 PEM, public SubjectPublicKeyInfo PEM).
pub fn generate_rsa_key() -> Result<(String, String), SigError> {
    use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
    use aws_lc_rs::signature::KeyPair as _;
    let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
        .map_err(|e| SigError::Key(e.to_string()))?;
    let private: Pkcs8V1Der = pair.as_der().map_err(|e| SigError::Key(e.to_string()))?;
    let public: PublicKeyX509Der = pair
        .public_key()
        .as_der()
        .map_err(|e| SigError::Key(e.to_string()))?;
    let encode = |tag: &str, der: &[u8]| {
        pem::encode_config(
            &pem::Pem::new(tag, der.to_vec()),
            pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
        )
    };
    Ok((
        encode("PRIVATE KEY", private.as_ref()),
        encode("PUBLIC KEY", public.as_ref()),
    ))
}

/// The OCI key fingerprint: MD5 of the DER SubjectPublicKeyInfo as 16 lower-case hex pairs.
pub fn fingerprint(public_key_pem: &str) -> Result<String, SigError> {
    Ok(fingerprint_der(&pem_der(public_key_pem, "PUBLIC KEY")?))
}

fn fingerprint_der(spki: &[u8]) -> String {
    use md5::Digest;
    let digest = md5::Md5::digest(spki);
    digest
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn pem_der(pem_text: &str, tag: &str) -> Result<Vec<u8>, SigError> {
    let parsed = pem::parse(pem_text.trim()).map_err(|e| SigError::Key(e.to_string()))?;
    if parsed.tag() != tag {
        return Err(SigError::Key(format!(
            "expected a {tag} PEM block, found {:?}",
            parsed.tag()
        )));
    }
    Ok(parsed.into_contents())
}

/// Extracts the BIT STRING of a SubjectPublicKeyInfo (the PKCS#1 RSAPublicKey).
fn spki_to_pkcs1(spki: &[u8]) -> Result<Vec<u8>, SigError> {
    let bad = || SigError::Key("not a DER SubjectPublicKeyInfo".into());
    let (tag, outer, _) = der_item(spki).ok_or_else(bad)?;
    if tag != 0x30 {
        return Err(bad());
    }
    let (tag, _, rest) = der_item(outer).ok_or_else(bad)?; // AlgorithmIdentifier
    if tag != 0x30 {
        return Err(bad());
    }
    let (tag, bits, _) = der_item(rest).ok_or_else(bad)?;
    if tag != 0x03 || bits.first() != Some(&0) {
        return Err(bad());
    }
    Ok(bits[1..].to_vec())
}

/// One DER item: (tag, contents, rest).
fn der_item(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *input.first()?;
    let first = *input.get(1)? as usize;
    let (len, header) = if first < 0x80 {
        (first, 2)
    } else {
        let n = first & 0x7f;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *input.get(2 + i)? as usize;
        }
        (len, 2 + n)
    };
    let end = header.checked_add(len)?;
    if end > input.len() {
        return None;
    }
    Some((tag, &input[header..end], &input[end..]))
}

/// `Tue, 24 Nov 2026 18:21:31 GMT` (RFC 7231 IMF-fixdate).
pub fn imf_fixdate(t: Timestamp) -> String {
    t.strftime("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

pub fn parse_imf_fixdate(s: &str) -> Option<Timestamp> {
    let s = s.trim();
    let body = s.strip_suffix(" GMT")?;
    jiff::fmt::strtime::parse("%a, %d %b %Y %H:%M:%S", body)
        .ok()?
        .to_datetime()
        .ok()?
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .ok()
        .map(|z| z.timestamp())
}

#[cfg(test)]
mod tests;
