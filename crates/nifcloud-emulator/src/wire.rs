//! Request side of the wire: form parsing, typed parameter access and Signature Version 2 checks.
//!
//! Written from the protocol description only (no code shared with `nifcloud-sdk`), so the SDK and
//! the emulator can catch each other's mistakes.

use std::collections::BTreeMap;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::ApiError;

/// The decoded form body of one request: key -> value (a repeated key keeps its last value).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    map: BTreeMap<String, String>,
}

impl Params {
    /// Decodes an `application/x-www-form-urlencoded` body (`+` and `%20` both mean a space).
    pub fn parse(body: &[u8]) -> Self {
        let map = form_urlencoded::parse(body).into_owned().collect();
        Self { map }
    }

    /// Builds parameters from pairs (used by tests and the benchmark client).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        Self {
            map: pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect(),
        }
    }

    /// All parameters, sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.map.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Adds or replaces one parameter.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.map.insert(key.into(), value.into());
    }

    /// The value of `key`, if present (an empty value counts as present).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.map.get(key).map(String::as_str)
    }

    /// The value of `key` if present and non-empty.
    pub fn opt(&self, key: &str) -> Option<&str> {
        self.get(key).filter(|v| !v.is_empty())
    }

    /// A required, non-empty value.
    pub fn req(&self, key: &str) -> Result<&str, ApiError> {
        self.opt(key).ok_or_else(|| ApiError::missing(key))
    }

    /// An optional integer; a non-numeric value is `Client.InvalidParameter.<key>`.
    pub fn int(&self, key: &str) -> Result<Option<i64>, ApiError> {
        match self.opt(key) {
            None => Ok(None),
            Some(v) => v.trim().parse::<i64>().map(Some).map_err(|_| ApiError::invalid(key, v)),
        }
    }

    /// A required integer.
    pub fn req_int(&self, key: &str) -> Result<i64, ApiError> {
        self.int(key)?.ok_or_else(|| ApiError::missing(key))
    }

    /// An optional boolean (`true`/`false`, case-insensitive).
    pub fn bool(&self, key: &str) -> Result<Option<bool>, ApiError> {
        match self.opt(key) {
            None => Ok(None),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(v) => Err(ApiError::invalid(key, v)),
        }
    }

    /// The sorted, distinct indices N of keys `prefix.N` or `prefix.N.<rest>`.
    pub fn indices(&self, prefix: &str) -> Vec<u32> {
        let start = format!("{prefix}.");
        let mut out: Vec<u32> = self
            .map
            .range(start.clone()..)
            .take_while(|(k, _)| k.starts_with(&start))
            .filter_map(|(k, _)| {
                let rest = &k[start.len()..];
                let digits = rest.split('.').next().unwrap_or("");
                digits.parse::<u32>().ok()
            })
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Non-empty values of an EC2-style list `prefix.1`, `prefix.2`, ... in index order.
    pub fn list(&self, prefix: &str) -> Vec<&str> {
        self.indices(prefix)
            .into_iter()
            .filter_map(|n| self.opt(&format!("{prefix}.{n}")))
            .collect()
    }

    /// Key prefixes `prefix.member.N` of an ELB-style list of structures, in index order.
    pub fn members(&self, prefix: &str) -> Vec<String> {
        let base = format!("{prefix}.member");
        self.indices(&base).into_iter().map(|n| format!("{base}.{n}")).collect()
    }

    /// Key prefixes `prefix.N` of an EC2-style list of structures, in index order.
    pub fn items(&self, prefix: &str) -> Vec<String> {
        self.indices(prefix)
            .into_iter()
            .map(|n| format!("{prefix}.{n}"))
            .collect()
    }
}

/// RFC 3986 percent-encoding: only `A-Za-z0-9-_.~` stay as they are.
pub fn rfc3986(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
        }
    }
    out
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// The Signature Version 2 string to sign for a POST to `path` on `host` (`host[:port]`).
pub fn string_to_sign(host: &str, path: &str, params: &Params) -> String {
    let query: Vec<String> = params
        .iter()
        .filter(|(k, _)| *k != "Signature")
        .map(|(k, v)| format!("{}={}", rfc3986(k), rfc3986(v)))
        .collect();
    format!("POST\n{host}\n{path}\n{}", query.join("&"))
}

/// The HMAC algorithms Signature Version 2 allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureMethod {
    /// `HmacSHA256` (what the official SDKs send).
    HmacSha256,
    /// `HmacSHA1` (allowed by the documentation).
    HmacSha1,
}

impl SignatureMethod {
    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "HmacSHA256" => Some(Self::HmacSha256),
            "HmacSHA1" => Some(Self::HmacSha1),
            _ => None,
        }
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HmacSha256 => "HmacSHA256",
            Self::HmacSha1 => "HmacSHA1",
        }
    }
}

fn mac_bytes(method: SignatureMethod, secret: &str, data: &str) -> Vec<u8> {
    match method {
        SignatureMethod::HmacSha256 => {
            let mut m =
                <Hmac<sha2::Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key length");
            m.update(data.as_bytes());
            m.finalize().into_bytes().to_vec()
        }
        SignatureMethod::HmacSha1 => {
            let mut m =
                <Hmac<sha1::Sha1> as Mac>::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key length");
            m.update(data.as_bytes());
            m.finalize().into_bytes().to_vec()
        }
    }
}

/// Computes the base64 signature of `string_to_sign`.
pub fn sign(method: SignatureMethod, secret: &str, string_to_sign: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(mac_bytes(method, secret, string_to_sign))
}

/// Adds `AccessKeyId`, `SignatureVersion`, `SignatureMethod`, `Timestamp` and `Signature` to `params`
/// (a client-side helper for tests and the benchmark).
pub fn sign_params(
    params: &mut Params,
    host: &str,
    access_key: &str,
    secret: &str,
    method: SignatureMethod,
    now: OffsetDateTime,
) {
    params.insert("AccessKeyId", access_key);
    params.insert("SignatureVersion", "2");
    params.insert("SignatureMethod", method.as_str());
    let ts = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    );
    params.insert("Timestamp", ts);
    let sts = string_to_sign(host, "/api/", params);
    params.insert("Signature", sign(method, secret, &sts));
}

/// Encodes parameters as a form body (RFC 3986 style, which every form decoder accepts).
pub fn encode_body(params: &Params) -> String {
    let parts: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{}={}", rfc3986(k), rfc3986(v)))
        .collect();
    parts.join("&")
}

/// How a request failed authentication. Each maps to one documented error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// A signing parameter is missing.
    #[error("missing signing parameter {0}")]
    Missing(&'static str),
    /// The access key is not configured.
    #[error("unknown access key")]
    UnknownKey,
    /// `SignatureVersion` is not 2 or `SignatureMethod` is not HmacSHA256/HmacSHA1.
    #[error("unsupported signature version or method {0:?}")]
    Unsupported(String),
    /// `Timestamp` does not parse.
    #[error("malformed timestamp {0:?}")]
    BadTimestamp(String),
    /// `Timestamp` is further from the server clock than the allowed skew.
    #[error("timestamp {ts} is {skew_secs}s away from the server clock")]
    Stale {
        /// The timestamp sent.
        ts: String,
        /// The absolute skew in seconds.
        skew_secs: i64,
    },
    /// The signature does not match.
    #[error("signature does not match")]
    Mismatch,
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        let msg = e.to_string();
        match e {
            AuthError::Missing(_) | AuthError::UnknownKey => ApiError::with_status("Client.AuthFailure", msg, 401),
            AuthError::Unsupported(_) => ApiError::with_status("Client.InvalidParameter.SignatureMethod", msg, 400),
            AuthError::BadTimestamp(_) => ApiError::with_status("Client.InvalidParameter.Timestamp", msg, 400),
            AuthError::Stale { .. } => ApiError::with_status("Client.RequestExpired", msg, 403),
            AuthError::Mismatch => ApiError::with_status("Client.SignatureDoesNotMatch", msg, 403),
        }
    }
}

/// Verifies a Signature Version 2 request. `lookup` maps an access key to its secret.
/// Returns the access key on success.
pub fn verify<'a>(
    params: &'a Params,
    host: &str,
    path: &str,
    lookup: impl Fn(&str) -> Option<&'a str>,
    now: OffsetDateTime,
    max_skew_secs: i64,
) -> Result<&'a str, AuthError> {
    let key = params.opt("AccessKeyId").ok_or(AuthError::Missing("AccessKeyId"))?;
    let sig = params.opt("Signature").ok_or(AuthError::Missing("Signature"))?;
    let version = params
        .opt("SignatureVersion")
        .ok_or(AuthError::Missing("SignatureVersion"))?;
    let method_s = params
        .opt("SignatureMethod")
        .ok_or(AuthError::Missing("SignatureMethod"))?;
    let ts = params.opt("Timestamp").ok_or(AuthError::Missing("Timestamp"))?;
    if version != "2" {
        return Err(AuthError::Unsupported(format!("SignatureVersion={version}")));
    }
    let method = SignatureMethod::parse(method_s).ok_or_else(|| AuthError::Unsupported(method_s.to_owned()))?;
    let secret = lookup(key).ok_or(AuthError::UnknownKey)?;
    let when = OffsetDateTime::parse(ts, &Rfc3339).map_err(|_| AuthError::BadTimestamp(ts.to_owned()))?;
    let skew = (now - when).whole_seconds().abs();
    if skew > max_skew_secs {
        return Err(AuthError::Stale {
            ts: ts.to_owned(),
            skew_secs: skew,
        });
    }
    let sent = base64::engine::general_purpose::STANDARD
        .decode(sig)
        .map_err(|_| AuthError::Mismatch)?;
    let sts = string_to_sign(host, path, params);
    let ok = match method {
        SignatureMethod::HmacSha256 => {
            let mut m =
                <Hmac<sha2::Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key length");
            m.update(sts.as_bytes());
            m.verify_slice(&sent).is_ok()
        }
        SignatureMethod::HmacSha1 => {
            let mut m =
                <Hmac<sha1::Sha1> as Mac>::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key length");
            m.update(sts.as_bytes());
            m.verify_slice(&sent).is_ok()
        }
    };
    if ok { Ok(key) } else { Err(AuthError::Mismatch) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAPTURED: &str = "Action=DescribeVolumes&Version=3.0&VolumeId.1=vol01&VolumeId.2=vol+02%2F%E6%97%A5%E6%9C%AC&SignatureVersion=2&SignatureMethod=HmacSHA256&Timestamp=2026-11-25T20%3A04%3A43Z&AccessKeyId=AKIDEXAMPLE&Signature=U1QdjnR7RSv3ZCnJw8oHR0fw4Bra9M1ex3MmeJTvin0%3D";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    fn captured_time() -> OffsetDateTime {
        OffsetDateTime::parse("2026-11-25T20:05:00Z", &Rfc3339).unwrap()
    }

    #[test]
    fn captured_python_request_verifies() {
        let p = Params::parse(CAPTURED.as_bytes());
        assert_eq!(p.get("VolumeId.2"), Some("vol 02/日本"));
        let sts = string_to_sign("127.0.0.1:18777", "/api/", &p);
        assert!(sts.ends_with("VolumeId.2=vol%2002%2F%E6%97%A5%E6%9C%AC"), "{sts}");
        let r = verify(
            &p,
            "127.0.0.1:18777",
            "/api/",
            |k| (k == "AKIDEXAMPLE").then_some(SECRET),
            captured_time(),
            900,
        );
        assert_eq!(r, Ok("AKIDEXAMPLE"));
    }

    #[test]
    fn wrong_host_or_secret_or_time_is_rejected() {
        let p = Params::parse(CAPTURED.as_bytes());
        let lookup = |k: &str| (k == "AKIDEXAMPLE").then_some(SECRET);
        assert_eq!(
            verify(&p, "127.0.0.1:1", "/api/", lookup, captured_time(), 900),
            Err(AuthError::Mismatch)
        );
        let other = |k: &str| (k == "AKIDEXAMPLE").then_some("nope");
        assert_eq!(
            verify(&p, "127.0.0.1:18777", "/api/", other, captured_time(), 900),
            Err(AuthError::Mismatch)
        );
        let late = captured_time() + time::Duration::minutes(16);
        assert!(matches!(
            verify(&p, "127.0.0.1:18777", "/api/", lookup, late, 900),
            Err(AuthError::Stale { .. })
        ));
        let none = |_: &str| None;
        assert_eq!(
            verify(&p, "127.0.0.1:18777", "/api/", none, captured_time(), 900),
            Err(AuthError::UnknownKey)
        );
    }

    #[test]
    fn sha1_round_trip_and_tamper() {
        let now = captured_time();
        let mut p = Params::from_pairs([("Action", "DescribeRegions"), ("Version", "3.0")]);
        sign_params(&mut p, "h:1", "K", "S", SignatureMethod::HmacSha1, now);
        let lookup = |k: &str| (k == "K").then_some("S");
        assert_eq!(verify(&p, "h:1", "/api/", lookup, now, 900), Ok("K"));
        let mut tampered = p.clone();
        tampered.insert("Action", "DescribeVolumes");
        assert_eq!(
            verify(&tampered, "h:1", "/api/", lookup, now, 900),
            Err(AuthError::Mismatch)
        );
    }

    #[test]
    fn list_helpers_follow_numeric_order() {
        let p = Params::parse(b"VolumeId.10=j&VolumeId.2=b&VolumeId.1=a&L.member.2.X=2&L.member.1.X=1&VolumeIdX=z");
        assert_eq!(p.list("VolumeId"), vec!["a", "b", "j"]);
        assert_eq!(p.members("L"), vec!["L.member.1".to_owned(), "L.member.2".to_owned()]);
        assert_eq!(rfc3986("a b/~*"), "a%20b%2F~%2A");
    }

    #[test]
    fn typed_access_reports_the_key() {
        let p = Params::parse(b"Size=abc&Agreement=yes");
        assert_eq!(p.int("Size").unwrap_err().code, "Client.InvalidParameter.Size");
        assert_eq!(
            p.bool("Agreement").unwrap_err().code,
            "Client.InvalidParameter.Agreement"
        );
        assert_eq!(p.req("VolumeId").unwrap_err().code, "Client.InvalidParameter.VolumeId");
    }
}
