//! The client: signs, sends and retries calls, and reads their replies.

use std::future::Future;
use std::marker::PhantomData;
use std::sync::{Arc, Once};
use std::time::Instant;

use time::OffsetDateTime;
use tracing::Instrument as _;

use crate::config::Config;
use crate::error::{Error, parse_error_document, unreadable_error_reply};
use crate::listing::ListSplitter;
use crate::metrics::{MetricsHook, Outcome};
use crate::operation::Operation;
use crate::retry::RetryConfig;
use crate::retry::should_retry;
use crate::signing::sign_request;
use crate::wire::Params;
use crate::xml::{self, FromXml, XmlError, XmlNode};

/// The API version every request names.
pub const API_VERSION: &str = "3.0";

/// A client of the computing API. Cheap to clone: clones share one connection pool.
///
/// Every call is a future that can be dropped at any point (a timeout, a `select!`): dropping it stops the
/// request and any backoff sleep at once.
#[derive(Clone, Debug)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    config: Config,
    host: String,
}

static CRYPTO: Once = Once::new();

/// Installs rustls' ring provider as the process default unless one is installed already.
fn install_crypto_provider() {
    CRYPTO.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

impl Client {
    /// A client for `config`.
    pub fn new(config: Config) -> Result<Client, Error> {
        install_crypto_provider();
        let http = reqwest::Client::builder()
            .user_agent(config.user_agent.clone())
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .pool_idle_timeout(std::time::Duration::from_secs(50))
            .build()
            .map_err(|source| Error::Transport {
                action: "build client".into(),
                endpoint: config.endpoint.to_string(),
                source,
            })?;
        let url = &config.endpoint;
        let host = match url.port() {
            Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_owned(),
        };
        Ok(Client {
            inner: Arc::new(Inner { http, config, host }),
        })
    }

    /// The configuration this client was built from (region, endpoint, credentials, retries).
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The same client (same connection pool, endpoint and credentials) with another retry policy; for example
    /// [`RetryConfig::disabled`] for a call whose "busy" reply must be looked into rather than repeated.
    pub fn with_retry(&self, retry: RetryConfig) -> Client {
        self.derive(|config| config.retry = retry)
    }

    /// The same client with `hook` recording every call.
    pub fn with_metrics(&self, hook: Arc<dyn MetricsHook>) -> Client {
        self.derive(|config| config.metrics = Some(hook))
    }

    fn derive(&self, change: impl FnOnce(&mut Config)) -> Client {
        let mut config = self.inner.config.clone();
        change(&mut config);
        Client {
            inner: Arc::new(Inner {
                http: self.inner.http.clone(),
                config,
                host: self.inner.host.clone(),
            }),
        }
    }

    /// Sends a typed operation and reads its typed reply (in one pass, straight from the reply's text).
    pub async fn send<O: Operation>(&self, op: &O) -> Result<O::Output, Error> {
        self.call(O::ACTION, params_of(op)?, &mut Whole(PhantomData)).await
    }

    /// Sends a typed operation and reads the list at `path` of its reply entry by entry, as the reply arrives
    /// (see [`crate::listing`]): each entry is read into `T` (the generated type of the list's entries, such as
    /// `ReservationSet` for `DescribeInstances` at `["reservationSet"]`) and handed to `fold` with the accumulator
    /// `init` made. Neither the reply nor its whole typed output is ever held, only one entry at a time: for a
    /// listing that is large and of which little is kept. A retried call starts again from a new accumulator.
    pub async fn send_folded<O, T, A>(
        &self,
        op: &O,
        path: &[&str],
        init: impl Fn() -> A + Send,
        fold: impl FnMut(&mut A, T) + Send,
    ) -> Result<A, Error>
    where
        O: Operation,
        T: FromXml,
        A: Send,
    {
        let params = params_of(op)?;
        let mut reader = Folded {
            path,
            init,
            fold,
            entry: PhantomData,
        };
        self.call(O::ACTION, params, &mut reader).await
    }

    /// Sends any action with the given parameters (Action and Version are added) and returns the reply's root
    /// element and request id. For operations the model does not know yet.
    pub async fn call_raw(&self, action: &str, params: Params) -> Result<(XmlNode, Option<String>), Error> {
        let root: XmlNode = self.call(action, params, &mut Whole(PhantomData)).await?;
        let request_id = xml::request_id(&root);
        Ok((root, request_id))
    }

    async fn call<R: ReadReply>(&self, action: &str, params: Params, reader: &mut R) -> Result<R::Output, Error> {
        let span = tracing::debug_span!(
            "nifcloud",
            action,
            attempt = tracing::field::Empty,
            request_id = tracing::field::Empty,
            latency_ms = tracing::field::Empty
        );
        let started = Instant::now();
        let result = self
            .call_with_retries(action, params, reader)
            .instrument(span.clone())
            .await;
        let latency = started.elapsed();
        span.record("latency_ms", latency.as_millis() as u64);
        if let Some(hook) = &self.inner.config.metrics {
            let (outcome, attempts) = match &result {
                Ok((_, attempts)) => (Outcome::Success, *attempts),
                Err((Error::Api(e), attempts)) => (Outcome::ApiError(&e.code), *attempts),
                Err((_, attempts)) => (Outcome::Failure, *attempts),
            };
            hook.record(action, outcome, attempts, latency);
        }
        result.map(|(reply, _)| reply).map_err(|(e, _)| e)
    }

    async fn call_with_retries<R: ReadReply>(
        &self,
        action: &str,
        params: Params,
        reader: &mut R,
    ) -> Result<(R::Output, u32), (Error, u32)> {
        let mut all = Params::new();
        all.push("Action", action);
        all.push("Version", API_VERSION);
        for (k, v) in params.iter() {
            all.push(k, v);
        }
        let retry = &self.inner.config.retry;
        let mut attempt = 1;
        loop {
            tracing::Span::current().record("attempt", attempt);
            match self.attempt(action, &all, reader).await {
                Ok(reply) => return Ok((reply, attempt)),
                Err(e) if attempt < retry.max_attempts.max(1) && should_retry(action, &e) => {
                    let wait = retry.backoff(attempt, &mut rand::rng());
                    tracing::debug!(error = %e, ?wait, "retrying");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Err(e) => return Err((e, attempt)),
            }
        }
    }

    async fn attempt<R: ReadReply>(&self, action: &str, params: &Params, reader: &mut R) -> Result<R::Output, Error> {
        let cfg = &self.inner.config;
        let body = sign_request(
            params,
            &cfg.credentials,
            cfg.signature_method,
            &self.inner.host,
            cfg.endpoint.path(),
            OffsetDateTime::now_utc(),
        );
        let transport = |source| Error::Transport {
            action: action.into(),
            endpoint: cfg.endpoint.to_string(),
            source,
        };
        let response = self
            .inner
            .http
            .post(cfg.endpoint.clone())
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded; charset=utf-8",
            )
            .body(body)
            .send()
            .await
            .map_err(transport)?;
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return reader.read(response).await.map_err(|e| match e {
                ReadError::Transport(source) => transport(source),
                ReadError::Parse(source) => Error::Parse {
                    action: action.into(),
                    status,
                    source,
                },
            });
        }
        // An error document is short: read whole, as bytes borrowed as text (read lossily when not UTF-8, as
        // `Response::text` would).
        let bytes = response.bytes().await.map_err(transport)?;
        let text = String::from_utf8_lossy(&bytes);
        match parse_error_document(action, status, &text) {
            Some(api) => {
                tracing::Span::current().record("request_id", api.request_id.as_deref().unwrap_or(""));
                Err(Error::Api(api))
            }
            None => Err(Error::Api(unreadable_error_reply(action, status, &text))),
        }
    }
}

/// The validated, serialized parameters of `op`.
fn params_of<O: Operation>(op: &O) -> Result<Params, Error> {
    op.validate()?;
    let mut params = Params::new();
    op.serialize(&mut params);
    Ok(params)
}

/// Why a successful reply could not be read.
enum ReadError {
    Transport(reqwest::Error),
    Parse(XmlError),
}

/// How a successful (2xx) reply is read, once per attempt.
trait ReadReply: Send {
    type Output;
    fn read(&mut self, response: reqwest::Response) -> impl Future<Output = Result<Self::Output, ReadError>> + Send;
}

/// Reads the whole reply into a generated output type, or the tree for [`Client::call_raw`].
struct Whole<R>(PhantomData<fn() -> R>);

impl<R: Reply> ReadReply for Whole<R> {
    type Output = R;

    async fn read(&mut self, response: reqwest::Response) -> Result<R, ReadError> {
        // Read as bytes and borrowed as text (a UTF-8 reply is not copied).
        let bytes = response.bytes().await.map_err(ReadError::Transport)?;
        let reply = R::read(&String::from_utf8_lossy(&bytes)).map_err(ReadError::Parse)?;
        tracing::Span::current().record("request_id", reply.request_id().unwrap_or(""));
        Ok(reply)
    }
}

/// Reads the entries of one list of the reply as the reply arrives ([`Client::send_folded`]).
struct Folded<'p, T, I, F> {
    path: &'p [&'p str],
    init: I,
    fold: F,
    entry: PhantomData<fn() -> T>,
}

impl<T, A, I, F> ReadReply for Folded<'_, T, I, F>
where
    T: FromXml,
    A: Send,
    I: Fn() -> A + Send,
    F: FnMut(&mut A, T) + Send,
{
    type Output = A;

    async fn read(&mut self, mut response: reqwest::Response) -> Result<A, ReadError> {
        let mut acc = (self.init)();
        let mut splitter = ListSplitter::new(self.path);
        let fold = &mut self.fold;
        let mut each = |entry: &str| -> Result<(), XmlError> {
            fold(&mut acc, xml::from_str::<T>(entry)?);
            Ok(())
        };
        while let Some(chunk) = response.chunk().await.map_err(ReadError::Transport)? {
            splitter.feed(&chunk, &mut each).map_err(ReadError::Parse)?;
        }
        splitter.finish(&mut each).map_err(ReadError::Parse)?;
        tracing::Span::current().record("request_id", splitter.request_id().unwrap_or(""));
        Ok(acc)
    }
}

/// What a successful reply is read into whole: a generated output type, or the tree for [`Client::call_raw`].
trait Reply: Sized {
    fn read(body: &str) -> Result<Self, XmlError>;
    fn request_id(&self) -> Option<&str>;
}

impl<T: FromXml> Reply for T {
    fn read(body: &str) -> Result<Self, XmlError> {
        xml::from_str(body)
    }
    fn request_id(&self) -> Option<&str> {
        FromXml::request_id(self)
    }
}

impl Reply for XmlNode {
    fn read(body: &str) -> Result<Self, XmlError> {
        xml::parse(body)
    }
    fn request_id(&self) -> Option<&str> {
        XmlNode::request_id(self)
    }
}
