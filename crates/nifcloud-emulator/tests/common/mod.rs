//! A small signed client for the emulator (uses the emulator's own SigV2 signer).

#![allow(dead_code)]

use nifcloud_emulator::Emulator;
use nifcloud_emulator::wire::{Params, SignatureMethod, encode_body, sign_params};

/// A signed HTTP client bound to one emulator.
#[derive(Clone)]
pub struct Client {
    pub http: reqwest::Client,
    pub endpoint: String,
    pub host: String,
    pub access_key: String,
    pub secret_key: String,
    pub method: SignatureMethod,
    pub clock_offset_secs: i64,
}

/// What the emulator answered one call: HTTP status and XML body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

impl Reply {
    /// The `<Code>` of an error document, if any.
    pub fn code(&self) -> Option<String> {
        let start = self.body.find("<Code>")? + 6;
        let end = self.body[start..].find("</Code>")? + start;
        Some(self.body[start..end].to_owned())
    }

    /// Text of the first `<tag>` element.
    pub fn first(&self, tag: &str) -> Option<String> {
        let open = format!("<{tag}>");
        let start = self.body.find(&open)? + open.len();
        let end = self.body[start..].find(&format!("</{tag}>"))? + start;
        Some(self.body[start..end].to_owned())
    }
}

pub fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().build().expect("reqwest client")
}

impl Client {
    pub fn new(emu: &Emulator) -> Self {
        let (access_key, secret_key) = emu.credentials();
        Self {
            http: http(),
            endpoint: emu.endpoint(),
            host: emu.addr().to_string(),
            access_key,
            secret_key,
            method: SignatureMethod::HmacSha256,
            clock_offset_secs: 0,
        }
    }

    pub fn body(&self, pairs: &[(&str, &str)]) -> String {
        let mut p = Params::from_pairs(pairs.iter().copied());
        p.insert("Version", "3.0");
        let now = time::OffsetDateTime::now_utc() + time::Duration::seconds(self.clock_offset_secs);
        sign_params(&mut p, &self.host, &self.access_key, &self.secret_key, self.method, now);
        encode_body(&p)
    }

    pub async fn raw(&self, body: String) -> Reply {
        let r = self
            .http
            .post(&self.endpoint)
            .header("content-type", "application/x-www-form-urlencoded; charset=utf-8")
            .body(body)
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        Reply {
            status,
            body: r.text().await.expect("body"),
        }
    }

    pub async fn call(&self, pairs: &[(&str, &str)]) -> Reply {
        self.raw(self.body(pairs)).await
    }
}
