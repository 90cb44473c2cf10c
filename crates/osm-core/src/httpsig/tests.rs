use super::*;

fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

struct Fixture {
    private: String,
    public: String,
    key_id: String,
    now: Timestamp,
    date: String,
}

fn fixture() -> Fixture {
    let (private, public) = generate_rsa_key().unwrap();
    let fp = fingerprint(&public).unwrap();
    let now = Timestamp::from_second(1_795_000_000).unwrap();
    Fixture {
        key_id: format!("ocid1.tenancy.oc1..t/ocid1.user.oc1..u/{fp}"),
        private,
        public,
        date: imf_fixdate(now),
        now,
    }
}

fn signed_get(f: &Fixture, target: &str) -> (Authorization, Vec<(String, String)>) {
    let host = "127.0.0.1:9443";
    let auth = sign(
        "GET",
        target,
        &[("date", &f.date), ("host", host)],
        &f.key_id,
        &f.private,
    )
    .unwrap();
    let h = headers(&[("date", &f.date), ("host", host), ("authorization", &auth)]);
    (parse_authorization(&auth).unwrap(), h)
}

#[test]
fn get_round_trip_and_tampering() {
    let f = fixture();
    let key = VerifyingKey::from_pem(&f.public).unwrap();
    let target = "/20190801/managedInstances?compartmentId=ocid1.tenancy.oc1..t";
    let (auth, h) = signed_get(&f, target);
    assert_eq!(auth.headers, ["date", "(request-target)", "host"]);
    verify_with(&auth, "GET", target, &h, &key, f.now).unwrap();
    assert_eq!(
        verify_with(&auth, "GET", "/20190801/managedInstances", &h, &key, f.now),
        Err(SigError::BadSignature)
    );
    assert_eq!(
        verify_with(&auth, "DELETE", target, &h, &key, f.now),
        Err(SigError::BadSignature)
    );
    let mut other_host = h.clone();
    other_host[1].1 = "evil:9443".into();
    assert_eq!(
        verify_with(&auth, "GET", target, &other_host, &key, f.now),
        Err(SigError::BadSignature)
    );
    let (_, other_public) = generate_rsa_key().unwrap();
    let other = VerifyingKey::from_pem(&other_public).unwrap();
    assert_eq!(
        verify_with(&auth, "GET", target, &h, &other, f.now),
        Err(SigError::BadSignature)
    );
    // Six minutes either way is too far.
    let late = f.now + SignedDuration::from_mins(6);
    assert!(matches!(
        verify_with(&auth, "GET", target, &h, &key, late),
        Err(SigError::Skew(6))
    ));
    let early = f.now - SignedDuration::from_mins(6);
    assert!(matches!(
        verify_with(&auth, "GET", target, &h, &key, early),
        Err(SigError::Skew(6))
    ));
    verify_with(
        &auth,
        "GET",
        target,
        &h,
        &key,
        f.now + SignedDuration::from_mins(4),
    )
    .unwrap();
    let no_date = headers(&[("host", "127.0.0.1:9443")]);
    assert_eq!(
        verify_with(&auth, "GET", target, &no_date, &key, f.now),
        Err(SigError::MissingHeader("date".into()))
    );
}

#[test]
fn post_needs_the_body_headers_and_a_matching_digest() {
    let f = fixture();
    let key = VerifyingKey::from_pem(&f.public).unwrap();
    let body = br#"{"displayName": "web"}"#;
    let digest = body_digest(body);
    let len = body.len().to_string();
    let signed = [
        ("date", f.date.as_str()),
        ("host", "127.0.0.1:9443"),
        ("content-length", len.as_str()),
        ("content-type", "application/json"),
        ("x-content-sha256", digest.as_str()),
    ];
    let auth = parse_authorization(
        &sign(
            "POST",
            "/20190801/managedInstanceGroups",
            &signed,
            &f.key_id,
            &f.private,
        )
        .unwrap(),
    )
    .unwrap();
    let h = headers(&signed);
    verify_with(
        &auth,
        "POST",
        "/20190801/managedInstanceGroups",
        &h,
        &key,
        f.now,
    )
    .unwrap();
    verify_body(&h, body).unwrap();
    assert_eq!(verify_body(&h, b"{}"), Err(SigError::BodyDigest));
    let mut wrong_len = h.clone();
    wrong_len[2].1 = "3".into();
    assert_eq!(verify_body(&wrong_len, body), Err(SigError::BodyLength));
    // A POST signed like a GET is refused.
    let get_style = parse_authorization(
        &sign(
            "POST",
            "/x",
            &[("date", &f.date), ("host", "127.0.0.1:9443")],
            &f.key_id,
            &f.private,
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        verify_with(&get_style, "POST", "/x", &h, &key, f.now),
        Err(SigError::HeaderNotSigned("content-length"))
    );
    assert_eq!(
        body_digest(b""),
        "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
    );
}

#[test]
fn malformed_authorization_headers() {
    let good_fp = "e2:a5:41:ca:53:12:be:6a:36:74:7a:d4:ed:45:85:f0";
    let ok = format!(
        "Signature algorithm=\"rsa-sha256\",headers=\"date (request-target) host\",keyId=\"t/u/{good_fp}\",signature=\"AAAA\",version=\"1\""
    );
    parse_authorization(&ok).unwrap();
    type Check = fn(&SigError) -> bool;
    let cases: Vec<(String, Check)> = vec![
        ("Basic dXNlcjpwYXNz".into(), |e| {
            matches!(e, SigError::NotSignature)
        }),
        ("Signature".into(), |e| matches!(e, SigError::NotSignature)),
        (ok.replace("keyId", "kid"), |e| {
            matches!(e, SigError::MissingParam("keyId"))
        }),
        (ok.replace(",signature=\"AAAA\"", ""), |e| {
            matches!(e, SigError::MissingParam("signature"))
        }),
        (ok.replace("AAAA", "!!!"), |e| {
            matches!(e, SigError::Malformed(_))
        }),
        (ok.replace("rsa-sha256", "hmac-sha256"), |e| {
            matches!(e, SigError::Algorithm(_))
        }),
        (ok.replace(&format!("t/u/{good_fp}"), "t/u"), |e| {
            matches!(e, SigError::KeyId(_))
        }),
        (ok.replace(good_fp, "E2:A5"), |e| {
            matches!(e, SigError::KeyId(_))
        }),
        (ok.replace("headers=\"", "headers="), |e| {
            matches!(e, SigError::Malformed(_))
        }),
        (ok.replace("version=\"1\"", "version=\"2\""), |e| {
            matches!(e, SigError::Malformed(_))
        }),
        (format!("{ok} trailing"), |e| {
            matches!(e, SigError::Malformed(_))
        }),
    ];
    for (value, check) in cases {
        let err = parse_authorization(&value).unwrap_err();
        assert!(check(&err), "{value:?} gave {err:?}");
        assert!(!err.to_string().is_empty());
    }
}

#[test]
fn signature_must_cover_date_target_and_host() {
    let f = fixture();
    let key = VerifyingKey::from_pem(&f.public).unwrap();
    let auth = parse_authorization(
        &sign("GET", "/x", &[("date", &f.date)], &f.key_id, &f.private).unwrap(),
    )
    .unwrap();
    let h = headers(&[("date", &f.date), ("host", "h")]);
    assert_eq!(
        verify_with(&auth, "GET", "/x", &h, &key, f.now),
        Err(SigError::HeaderNotSigned("host"))
    );
}

#[test]
fn fingerprint_matches_openssl() {
    // A throw-away key; the expected value is what
    // `openssl rsa -pubin -in key.pem -outform DER | openssl md5 -c` printed for it.
    let public = include_str!("../../tests/fixtures/oci_sdk_key_public.pem");
    let expected = include_str!("../../tests/fixtures/oci_sdk_key_fingerprint.txt").trim();
    assert_eq!(fingerprint(public).unwrap(), expected);
    assert_eq!(
        VerifyingKey::from_pem(public).unwrap().fingerprint(),
        expected
    );
    assert!(fingerprint("not a key").is_err());
}

#[test]
fn imf_dates() {
    let t = parse_imf_fixdate("Tue, 24 Nov 2026 18:21:31 GMT").unwrap();
    assert_eq!(imf_fixdate(t), "Tue, 24 Nov 2026 18:21:31 GMT");
    assert!(parse_imf_fixdate("2026-11-24T18:21:31Z").is_none());
}

/// Requests signed by the real `oci` SDK 2.158.2 (`tests/fixtures/gen_oci_signed.py`).
#[test]
fn verifies_requests_signed_by_the_oci_sdk() {
    let public = include_str!("../../tests/fixtures/oci_sdk_key_public.pem");
    let key = VerifyingKey::from_pem(public).unwrap();
    let captured: serde_json::Value =
        serde_json::from_str(include_str!("../../tests/fixtures/oci_sdk_signed.json")).unwrap();
    let requests = captured.as_array().unwrap();
    assert!(requests.len() >= 3);
    for r in requests {
        let h: Vec<(String, String)> = r["headers"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.as_str().unwrap().to_string()))
            .collect();
        let method = r["method"].as_str().unwrap();
        let target = r["target"].as_str().unwrap();
        let auth = parse_authorization(h.header("authorization").unwrap()).unwrap();
        let now = parse_imf_fixdate(h.header("date").unwrap()).unwrap();
        verify_with(&auth, method, target, &h, &key, now)
            .unwrap_or_else(|e| panic!("{method} {target}: {e}"));
        if method == "POST" {
            verify_body(&h, r["body"].as_str().unwrap().as_bytes()).unwrap();
        }
        // The same request with another target does not verify.
        assert_eq!(
            verify_with(&auth, method, &format!("{target}x"), &h, &key, now),
            Err(SigError::BadSignature)
        );
    }
}
