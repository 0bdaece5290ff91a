//! Setting up moto and looking into it: creating buckets, IAM users and keys, reading and
//! listing objects with plain HTTP/1.1 requests (object_store creates no buckets, and a check
//! should not read back through the code under test). Test scaffolding only: what the product
//! sends goes through object_store.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Sends one request and returns (status, body).
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> (u16, String) {
    let (status, body) = request_bytes(port, method, path, headers, body);
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// [`request`] with the body as bytes (objects are binary).
pub fn request_bytes(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> (u16, Vec<u8>) {
    try_request_bytes(port, method, path, headers, body)
        .unwrap_or_else(|e| panic!("{method} {path} on port {port}: {e}"))
}

/// [`request_bytes`] for callers that report rather than panic: Err when the connection
/// fails or the answer is chunked (not read here).
pub fn try_request_bytes(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> io::Result<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    s.write_all(body)?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp)?;
    let split = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(resp.len());
    let head = String::from_utf8_lossy(&resp[..split]).to_ascii_lowercase();
    if head.contains("transfer-encoding: chunked") {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("chunked answers are not read here: {head}"),
        ));
    }
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = resp.get(split + 4..).unwrap_or_default().to_vec();
    Ok((status, body))
}

/// An object's bytes from moto; panics unless it exists.
pub fn moto_get(port: u16, bucket: &str, key: &str) -> Vec<u8> {
    try_moto_get(port, bucket, key).unwrap_or_else(|e| panic!("{e}"))
}

/// [`moto_get`] for callers that report rather than panic.
pub fn try_moto_get(port: u16, bucket: &str, key: &str) -> Result<Vec<u8>, String> {
    let path = format!("/{bucket}/{key}");
    match try_request_bytes(port, "GET", &path, &[aws_auth("s3")], b"") {
        Ok((200, body)) => Ok(body),
        Ok((status, body)) => Err(format!(
            "GET {bucket}/{key} from moto: {status} {}",
            String::from_utf8_lossy(&body)
        )),
        Err(e) => Err(format!("GET {bucket}/{key} from moto: {e}")),
    }
}

/// Puts an object into moto (a file "an agent wrote", for tests of what reads it).
pub fn moto_put(port: u16, bucket: &str, key: &str, body: &[u8]) {
    let (status, text) = request(
        port,
        "PUT",
        &format!("/{bucket}/{key}"),
        &[aws_auth("s3")],
        body,
    );
    assert_eq!(status, 200, "PUT {bucket}/{key}: {text}");
}

/// Every key in a moto bucket (ListObjectsV2; test buckets hold fewer than 1000).
pub fn moto_keys(port: u16, bucket: &str) -> Vec<String> {
    let (status, body) = request(
        port,
        "GET",
        &format!("/{bucket}?list-type=2"),
        &[aws_auth("s3")],
        b"",
    );
    assert_eq!(status, 200, "listing {bucket}: {body}");
    assert!(body.contains("<IsTruncated>false</IsTruncated>"), "{body}");
    let mut keys: Vec<String> = body
        .split("<Key>")
        .skip(1)
        .filter_map(|s| s.split_once("</Key>").map(|(k, _)| k.to_owned()))
        .collect();
    keys.sort();
    keys
}

/// Multipart uploads of a bucket that were started and neither completed nor aborted.
pub fn moto_open_uploads(port: u16, bucket: &str) -> Vec<String> {
    let (status, body) = request(
        port,
        "GET",
        &format!("/{bucket}?uploads"),
        &[aws_auth("s3")],
        b"",
    );
    assert_eq!(status, 200, "listing uploads of {bucket}: {body}");
    body.split("<Key>")
        .skip(1)
        .filter_map(|s| s.split_once("</Key>").map(|(k, _)| k.to_owned()))
        .collect()
}

/// An AWS SigV4-shaped Authorization header naming `service`; moto routes on it and, while
/// its free requests last, checks nothing else.
fn aws_auth(service: &str) -> (&'static str, String) {
    (
        "Authorization",
        format!(
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20260101/us-east-1/{service}/aws4_request, \
             SignedHeaders=host, Signature=00"
        ),
    )
}

/// Creates an S3 bucket in moto.
pub fn moto_bucket(port: u16, bucket: &str) {
    try_moto_bucket(port, bucket).unwrap_or_else(|e| panic!("{e}"));
}

/// [`moto_bucket`] for callers that report rather than panic.
pub fn try_moto_bucket(port: u16, bucket: &str) -> Result<(), String> {
    match try_request_bytes(port, "PUT", &format!("/{bucket}"), &[aws_auth("s3")], b"") {
        Ok((200, _)) => Ok(()),
        Ok((status, body)) => Err(format!(
            "creating bucket {bucket} in moto: {status} {}",
            String::from_utf8_lossy(&body)
        )),
        Err(e) => Err(format!("creating bucket {bucket} in moto: {e}")),
    }
}

/// Calls an IAM action in moto with form parameters; returns the XML body.
pub fn moto_iam(port: u16, params: &[(&str, &str)]) -> String {
    let mut form = String::from("Version=2010-05-08");
    for (k, v) in params {
        form.push('&');
        form.push_str(k);
        form.push('=');
        form.push_str(
            &percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC)
                .to_string(),
        );
    }
    let (status, body) = request(
        port,
        "POST",
        "/",
        &[
            aws_auth("iam"),
            ("Content-Type", "application/x-www-form-urlencoded".into()),
        ],
        form.as_bytes(),
    );
    assert_eq!(status, 200, "IAM {params:?}: {body}");
    body
}

/// The text of the first `<tag>` element.
pub fn xml_field(xml: &str, tag: &str) -> String {
    let open = format!("<{tag}>");
    let start = xml
        .find(&open)
        .map(|i| i + open.len())
        .unwrap_or_else(|| panic!("no <{tag}> in {xml}"));
    let end = xml[start..].find('<').map(|i| start + i).unwrap();
    xml[start..end].to_owned()
}

/// A moto IAM user with an access key and an inline policy; returns (key id, secret).
pub fn moto_user(port: u16, name: &str, policy: &str) -> (String, String) {
    moto_iam(port, &[("Action", "CreateUser"), ("UserName", name)]);
    let xml = moto_iam(port, &[("Action", "CreateAccessKey"), ("UserName", name)]);
    moto_iam(
        port,
        &[
            ("Action", "PutUserPolicy"),
            ("UserName", name),
            ("PolicyName", "p"),
            ("PolicyDocument", policy),
        ],
    );
    (
        xml_field(&xml, "AccessKeyId"),
        xml_field(&xml, "SecretAccessKey"),
    )
}

/// Parts already uploaded to the open multipart upload of `key` (0 when none is open):
/// what the store holds of an object still being written.
pub fn moto_open_parts(port: u16, bucket: &str, key: &str) -> usize {
    let (status, body) = request(
        port,
        "GET",
        &format!("/{bucket}?uploads"),
        &[aws_auth("s3")],
        b"",
    );
    assert_eq!(status, 200, "listing uploads of {bucket}: {body}");
    let Some(upload) = body
        .split("<Upload>")
        .skip(1)
        .find(|u| u.contains(&format!("<Key>{key}</Key>")))
    else {
        return 0;
    };
    let id = xml_field(upload, "UploadId");
    let (status, body) = request(
        port,
        "GET",
        &format!("/{bucket}/{key}?uploadId={id}"),
        &[aws_auth("s3")],
        b"",
    );
    assert_eq!(status, 200, "listing parts of {key}: {body}");
    body.matches("<PartNumber>").count()
}
