//! FHIR, webhook and DICOMweb (STOW-RS) destinations over HTTP(S).
//!
//! 2xx is delivered. 408, 429 and 5xx, a refused connection and a timeout
//! are retried; any other answer is a rejection the outbox keeps as dead
//! letter with the server's own words (an OperationOutcome's diagnostics).
//! Secrets (the FHIR bearer token, the webhook's signing secret) and the
//! `ca_file` are read for each attempt, so renewing them needs no restart.

use std::time::Duration;

use hmac::{Hmac, Mac};
use report::StudyResult;
use sha2::Sha256;

use super::Outcome;
use crate::config::{destination::read_secret, DestinationConfig};

/// The header that carries the delivery's identifier (the same on every
/// attempt: a receiver drops a repeat).
pub const DELIVERY_HEADER: &str = "X-Triaged-Delivery";
/// Seconds since 1970 when the request was signed.
pub const TIMESTAMP_HEADER: &str = "X-Triaged-Timestamp";
/// `sha256=` and the hexadecimal HMAC-SHA256 of `<timestamp>.<body>`.
pub const SIGNATURE_HEADER: &str = "X-Triaged-Signature";

fn failed(error: String, permanent: bool) -> Outcome {
    Outcome::Failed {
        status: None,
        error,
        permanent,
    }
}

/// A client for one attempt: the timeout, and `ca_file`'s authorities
/// instead of the system's when set.
fn client(d: &DestinationConfig, timeout: Duration) -> Result<reqwest::Client, String> {
    let mut b = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("triaged/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none());
    if let Some(f) = &d.ca_file {
        let pem = std::fs::read(f).map_err(|e| format!("ca_file {}: {e}", f.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("ca_file {}: {e}", f.display()))?;
        b = b.tls_built_in_root_certs(false);
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    b.build()
        .map_err(|e| format!("cannot make an HTTP client: {e}"))
}

/// An error with its causes: "error sending request" alone says nothing.
fn chain(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}

/// Send a request and judge the answer.
async fn post(name: &str, request: reqwest::RequestBuilder) -> Outcome {
    let response = match request.send().await {
        Ok(r) => r,
        Err(e) => return failed(format!("{name}: {}", chain(&e)), false),
    };
    let status = response.status();
    if status.is_success() {
        return Outcome::Delivered {
            status: dimse::Status::SUCCESS,
            note: Some(format!("HTTP {}", status.as_u16())),
        };
    }
    let body = response.text().await.unwrap_or_default();
    let retry = status.is_server_error() || matches!(status.as_u16(), 408 | 429);
    let mut said = report::fhir::outcome_text(&body);
    if said.trim().is_empty() {
        said = status.canonical_reason().unwrap_or("no text").to_string();
    }
    failed(
        format!("{name} answered HTTP {}: {said}", status.as_u16()),
        !retry,
    )
}

/// POST the result's transaction Bundle to the FHIR base.
pub async fn fhir(d: &DestinationConfig, result: &StudyResult, timeout: Duration) -> Outcome {
    let bundle = report::fhir::bundle(
        result,
        &report::fhir::Options {
            patient_system: d.patient_system.clone(),
        },
    );
    let client = match client(d, timeout) {
        Ok(c) => c,
        Err(e) => return failed(e, true),
    };
    let mut request = client
        .post(&d.url)
        .header("Content-Type", "application/fhir+json")
        .header("Accept", "application/fhir+json")
        .body(bundle.to_string());
    if let Some(f) = &d.token_file {
        match read_secret(f) {
            Ok(token) => request = request.bearer_auth(token),
            Err(e) => return failed(format!("token_file {}: {e}", f.display()), false),
        }
    }
    post(&d.url, request).await
}

/// `GET <base>/metadata`: whether the FHIR server answers, and which
/// FHIR version it says it speaks.
pub async fn capabilities(d: &DestinationConfig, timeout: Duration) -> Result<String, String> {
    let client = client(d, timeout)?;
    let url = format!("{}/metadata", d.url.trim_end_matches('/'));
    let mut request = client.get(&url).header("Accept", "application/fhir+json");
    if let Some(f) = &d.token_file {
        request = request
            .bearer_auth(read_secret(f).map_err(|e| format!("token_file {}: {e}", f.display()))?);
    }
    let started = std::time::Instant::now();
    let response = request.send().await.map_err(|e| format!("{url}: {e}"))?;
    let status = response.status();
    let body: serde_json::Value =
        serde_json::from_str(&response.text().await.unwrap_or_default()).unwrap_or_default();
    if !status.is_success() {
        return Err(format!("{url} answered HTTP {}", status.as_u16()));
    }
    Ok(format!(
        "{url} answered in {} ms (fhirVersion {})",
        started.elapsed().as_millis(),
        body["fhirVersion"].as_str().unwrap_or("not stated")
    ))
}

/// The signature header's value for `body` signed at `timestamp`.
pub fn signature(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

/// POST the signed alert.
pub async fn webhook(
    d: &DestinationConfig,
    result: &StudyResult,
    worklist: &str,
    timeout: Duration,
) -> Outcome {
    let id = result.message_id(&d.name);
    let body = report::webhook::payload(
        result,
        &id,
        &report::webhook::Options {
            include_patient: d.include_patient,
            worklist: worklist.to_string(),
        },
    )
    .to_string();
    let Some(f) = &d.secret_file else {
        return failed("secret_file is not set".into(), true);
    };
    let secret = match read_secret(f) {
        Ok(s) => s,
        Err(e) => return failed(format!("secret_file {}: {e}", f.display()), false),
    };
    let client = match client(d, timeout) {
        Ok(c) => c,
        Err(e) => return failed(e, true),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let request = client
        .post(&d.url)
        .header("Content-Type", "application/json")
        .header(DELIVERY_HEADER, &id)
        .header(TIMESTAMP_HEADER, now.to_string())
        .header(
            SIGNATURE_HEADER,
            signature(secret.as_bytes(), now, body.as_bytes()),
        )
        .body(body);
    post(&d.url, request).await
}

/// STOW-RS one kept object (a Part 10 file) to `<url>/studies`. 200 is
/// delivered; 202 is delivered unless the answer lists the object among
/// the failed ones; 409 and other 4xx are dead letter with the Failure
/// Reason; 408, 429, 5xx, timeouts and refused connections are retried.
pub async fn stow(
    d: &DestinationConfig,
    file: &std::path::Path,
    sop_instance_uid: &str,
    timeout: Duration,
) -> Outcome {
    let object = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) => return failed(format!("cannot read {}: {e}", file.display()), true),
    };
    use web::dicomweb::multipart;
    let boundary = multipart::boundary_for(std::iter::once(object.as_slice()));
    let mut body = multipart::part_head(&boundary, "application/dicom", true);
    body.extend_from_slice(&object);
    body.extend(multipart::close(&boundary));
    let client = match client(d, timeout) {
        Ok(c) => c,
        Err(e) => return failed(e, true),
    };
    let url = format!("{}/studies", d.url.trim_end_matches('/'));
    let mut request = client
        .post(&url)
        .header(
            "Content-Type",
            format!("multipart/related; type=\"application/dicom\"; boundary={boundary}"),
        )
        .header("Accept", "application/dicom+json")
        .body(body);
    if let Some(f) = &d.token_file {
        match read_secret(f) {
            Ok(token) => request = request.bearer_auth(token),
            Err(e) => return failed(format!("token_file {}: {e}", f.display()), false),
        }
    }
    let response = match request.send().await {
        Ok(r) => r,
        // Refused connections and timeouts: retried.
        Err(e) => return failed(format!("{url}: {}", chain(&e)), false),
    };
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let reason = failure_reason(&text, sop_instance_uid);
    match status.as_u16() {
        200 => Outcome::Delivered {
            status: dimse::Status::SUCCESS,
            note: Some("STOW-RS: HTTP 200".into()),
        },
        202 if reason.is_none() => Outcome::Delivered {
            status: dimse::Status::SUCCESS,
            note: Some("STOW-RS: HTTP 202 (stored with warnings)".into()),
        },
        s => {
            let retry = status.is_server_error() || matches!(s, 408 | 429);
            let said = match reason {
                Some(code) => format!("Failure Reason 0x{code:04X}"),
                None => status.canonical_reason().unwrap_or("no text").to_string(),
            };
            failed(format!("{url} answered HTTP {s}: {said}"), !retry)
        }
    }
}

/// The Failure Reason a STOW-RS answer gives for `sop`, if it lists it
/// among the failed instances.
fn failure_reason(answer: &str, sop: &str) -> Option<u16> {
    let v: serde_json::Value = serde_json::from_str(answer).ok()?;
    v["00081198"]["Value"].as_array()?.iter().find_map(|item| {
        let uid = item["00081155"]["Value"][0].as_str()?;
        (uid == sop).then(|| item["00081197"]["Value"][0].as_u64().unwrap_or(0xC000) as u16)
    })
}

/// `GET <url>/studies?limit=1`: whether the DICOMweb server answers QIDO-RS
/// with this destination's credentials.
pub async fn qido_probe(d: &DestinationConfig, timeout: Duration) -> Result<String, String> {
    let client = client(d, timeout)?;
    let url = format!("{}/studies?limit=1", d.url.trim_end_matches('/'));
    let mut request = client.get(&url).header("Accept", "application/dicom+json");
    if let Some(f) = &d.token_file {
        let token = read_secret(f).map_err(|e| format!("token_file {}: {e}", f.display()))?;
        request = request.bearer_auth(token);
    }
    let started = std::time::Instant::now();
    let r = request
        .send()
        .await
        .map_err(|e| format!("{url}: {}", chain(&e)))?;
    match r.status() {
        s if s.is_success() => Ok(format!(
            "{} answered QIDO-RS in {} ms",
            d.url,
            started.elapsed().as_millis()
        )),
        s => Err(format!("{url} answered HTTP {}", s.as_u16())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hmac_sha256_of_timestamp_dot_body() {
        // Computed independently: Python's
        // hmac.new(b"s3cret", b"1700000000.{}", hashlib.sha256).hexdigest()
        assert_eq!(
            signature(b"s3cret", 1700000000, b"{}"),
            "sha256=97926816e98fbb41ccb1673225ff29a2f35369099990e1b1561651e7bd097ebf"
        );
    }

    #[test]
    fn a_stow_answer_names_the_failed_instance() {
        let answer = r#"{"00081198":{"vr":"SQ","Value":[{"00081155":{"vr":"UI","Value":["1.2.3"]},"00081197":{"vr":"US","Value":[43264]}}]}}"#;
        assert_eq!(super::failure_reason(answer, "1.2.3"), Some(0xA900));
        assert_eq!(super::failure_reason(answer, "1.2.4"), None);
        assert_eq!(super::failure_reason("not json", "1.2.3"), None);
    }
}
