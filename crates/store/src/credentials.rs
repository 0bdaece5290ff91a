//! Credentials for a destination: the cloud's standard chain on the host that writes, or
//! explicit per-bucket secrets given through the API (or, for S3 and R2, in the URL).
//!
//! Secrets live in [`Secret`], whose `Debug` prints `[redacted]` and which has no `Display`
//! and no `Serialize`: the only ways out are [`Secret::expose`] (to hand a key to a client
//! builder) and [`crate::seal`] (to store it encrypted).

use std::fmt;

use serde_json::{Map, Value};

use crate::destination::Scheme;
use crate::error::StoreError;

/// A secret string. Never printed; compared in constant time.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The secret itself, for a client builder. Do not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (self.0.as_bytes(), other.0.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl Eq for Secret {}

/// Explicit credentials for one bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// S3 or R2 access keys (R2 issues S3-style keys).
    AccessKey {
        access_key_id: String,
        secret_access_key: Secret,
        session_token: Option<Secret>,
    },
    /// A GCS service-account key file's JSON.
    GcsServiceAccount { key_json: Secret },
    /// An Azure storage account key (base64).
    AzureAccessKey { key: Secret },
    /// An Azure shared access signature (the query string, without `?`).
    AzureSas { token: Secret },
}

/// Where a destination's credentials come from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CredentialSource {
    /// The cloud's standard chain on the host that writes: environment variables, then
    /// instance or workload identity (see docs/storage.md for each cloud).
    #[default]
    Chain,
    /// Given for this bucket.
    Explicit(Credentials),
}

impl Credentials {
    /// The API's JSON shape for per-bucket credentials, e.g. `{"access_key_id": "..",
    /// "secret_access_key": ".."}`, `{"service_account_key": {..}}`, `{"azure_access_key":
    /// ".."}` or `{"azure_sas": ".."}`. `field` names the object in errors; unknown keys are
    /// refused so a typo is not silently ignored.
    pub fn from_json(value: &Value, field: &str) -> Result<Credentials, StoreError> {
        let Some(obj) = value.as_object() else {
            return Err(StoreError::invalid(field, "must be a JSON object"));
        };
        let text = |key: &str| -> Result<Option<String>, StoreError> {
            match obj.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.trim().to_owned())),
                Some(_) => Err(StoreError::invalid(
                    &format!("{field}.{key}"),
                    "must be a non-empty string",
                )),
            }
        };
        let known = [
            "access_key_id",
            "secret_access_key",
            "session_token",
            "service_account_key",
            "azure_access_key",
            "azure_sas",
        ];
        if let Some(k) = obj.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(StoreError::invalid(
                &format!("{field}.{k}"),
                format!("unknown key; known: {}", known.join(", ")),
            ));
        }
        let kinds = [
            obj.contains_key("access_key_id") || obj.contains_key("secret_access_key"),
            obj.contains_key("service_account_key"),
            obj.contains_key("azure_access_key"),
            obj.contains_key("azure_sas"),
        ];
        match kinds.iter().filter(|k| **k).count() {
            0 => return Err(missing(field, "no credentials given")),
            1 => {}
            _ => {
                return Err(StoreError::invalid(
                    field,
                    "give one kind of credentials: access keys, a service account key, an Azure \
                     access key or an Azure SAS",
                ));
            }
        }
        if kinds[0] {
            let id = text("access_key_id")?
                .ok_or_else(|| missing(&format!("{field}.access_key_id"), "is required"))?;
            let secret = text("secret_access_key")?
                .ok_or_else(|| missing(&format!("{field}.secret_access_key"), "is required"))?;
            return Ok(Credentials::AccessKey {
                access_key_id: id,
                secret_access_key: Secret::new(secret),
                session_token: text("session_token")?.map(Secret::new),
            });
        }
        if let Some(v) = obj.get("service_account_key") {
            let json = match v {
                Value::Object(_) => v.to_string(),
                Value::String(s) => s.clone(),
                _ => String::new(),
            };
            let parsed: Option<Map<String, Value>> = serde_json::from_str(&json).ok();
            let ok = parsed.as_ref().is_some_and(|m| {
                m.get("client_email").is_some_and(Value::is_string)
                    && m.get("private_key").is_some_and(Value::is_string)
            });
            if !ok {
                return Err(StoreError::invalid(
                    &format!("{field}.service_account_key"),
                    "must be a service account key file (JSON with client_email and \
                     private_key)",
                ));
            }
            // object_store would send requests to a key's `gcs_base_url`: an endpoint that
            // the endpoint policy (crate::policy) would not see.
            if parsed
                .as_ref()
                .is_some_and(|m| m.contains_key("gcs_base_url"))
            {
                return Err(StoreError::invalid(
                    &format!("{field}.service_account_key.gcs_base_url"),
                    "is not accepted; give the store's URL as endpoint= in destination_conf",
                ));
            }
            return Ok(Credentials::GcsServiceAccount {
                key_json: Secret::new(json),
            });
        }
        if let Some(key) = text("azure_access_key")? {
            return Ok(Credentials::AzureAccessKey {
                key: Secret::new(key),
            });
        }
        let sas = text("azure_sas")?.unwrap_or_default();
        Ok(Credentials::AzureSas {
            token: Secret::new(sas.trim_start_matches('?')),
        })
    }

    /// Refuses credentials of another cloud (e.g. an Azure key for an s3:// bucket).
    pub fn check_scheme(&self, scheme: Scheme, field: &str) -> Result<(), StoreError> {
        let fits = match self {
            Credentials::AccessKey { .. } => matches!(scheme, Scheme::S3 | Scheme::R2),
            Credentials::GcsServiceAccount { .. } => scheme == Scheme::Gcs,
            Credentials::AzureAccessKey { .. } | Credentials::AzureSas { .. } => {
                scheme == Scheme::Azure
            }
        };
        if fits {
            Ok(())
        } else {
            Err(StoreError::invalid(
                field,
                format!(
                    "{} credentials do not fit a {}:// destination",
                    self.kind(),
                    scheme.as_str()
                ),
            ))
        }
    }

    /// What kind they are, for messages (never the values).
    pub fn kind(&self) -> &'static str {
        match self {
            Credentials::AccessKey { .. } => "access key",
            Credentials::GcsServiceAccount { .. } => "GCS service account",
            Credentials::AzureAccessKey { .. } => "Azure access key",
            Credentials::AzureSas { .. } => "Azure SAS",
        }
    }

    /// The plaintext JSON in the API's shape (what [`Credentials::from_json`] reads back), to
    /// hand to the one process that writes with them (the server gives it to an agent for
    /// one capture, over the agent's authenticated connection). Never log or store it.
    pub fn expose_json(&self) -> Value {
        self.to_plain_json()
    }

    /// The plaintext JSON, for [`crate::seal`] and [`Credentials::expose_json`].
    pub(crate) fn to_plain_json(&self) -> Value {
        match self {
            Credentials::AccessKey {
                access_key_id,
                secret_access_key,
                session_token,
            } => {
                let mut m = Map::new();
                m.insert("access_key_id".into(), access_key_id.clone().into());
                m.insert(
                    "secret_access_key".into(),
                    secret_access_key.expose().into(),
                );
                if let Some(t) = session_token {
                    m.insert("session_token".into(), t.expose().into());
                }
                Value::Object(m)
            }
            Credentials::GcsServiceAccount { key_json } => {
                serde_json::json!({ "service_account_key": key_json.expose() })
            }
            Credentials::AzureAccessKey { key } => {
                serde_json::json!({ "azure_access_key": key.expose() })
            }
            Credentials::AzureSas { token } => serde_json::json!({ "azure_sas": token.expose() }),
        }
    }
}

fn missing(field: &str, reason: &str) -> StoreError {
    StoreError::MissingCredentials {
        field: field.to_owned(),
        reason: reason.to_owned(),
    }
}
