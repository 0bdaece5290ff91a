//! Setting up Azurite: containers, created with a request signed with the development
//! account's shared key (object_store creates none).

use base64::Engine as _;

use crate::http::request;
use crate::servers::{AZURITE_ACCOUNT, AZURITE_KEY};

/// Creates a container in Azurite, signed with the development account's shared key.
pub fn azurite_container(port: u16, container: &str) {
    let date = httpdate::fmt_http_date(std::time::SystemTime::now());
    let version = "2021-08-06";
    let resource = format!("/{AZURITE_ACCOUNT}/{AZURITE_ACCOUNT}/{container}\nrestype:container");
    let to_sign =
        format!("PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n{resource}");
    let key = base64::engine::general_purpose::STANDARD
        .decode(AZURITE_KEY)
        .unwrap();
    let mac = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key),
        to_sign.as_bytes(),
    );
    let sig = base64::engine::general_purpose::STANDARD.encode(mac.as_ref());
    let (status, body) = request(
        port,
        "PUT",
        &format!("/{AZURITE_ACCOUNT}/{container}?restype=container"),
        &[
            ("x-ms-date", date),
            ("x-ms-version", version.into()),
            (
                "Authorization",
                format!("SharedKey {AZURITE_ACCOUNT}:{sig}"),
            ),
        ],
        b"",
    );
    assert_eq!(status, 201, "creating container {container}: {body}");
}
