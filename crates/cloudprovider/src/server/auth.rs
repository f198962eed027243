//! Authentication and authorization delegated to the API server, as kube-controller-manager and upstream cloud
//! controller managers do for their secure port: a bearer token is checked with a `TokenReview`, the user it names
//! is checked with a `SubjectAccessReview` on the non-resource URL (`get` `/metrics`), and both answers are cached
//! for a short while. Paths in the always-allow list (`/healthz`, `/readyz`, `/livez` by default) need neither.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Duration;

use http::HeaderMap;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{NonResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use kube::api::PostParams;
use kube::{Api, Client};
use sha2::{Digest, Sha256};
use tokio::time::Instant;

/// How many answers each cache keeps at most. Beyond that, expired answers are dropped first, then all of them:
/// a stream of made-up tokens cannot grow the process' memory.
const CACHE_CAPACITY: usize = 4096;

/// What the delegated authentication and authorization do (upstream's flag names in brackets).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthConfig {
    /// How long a `TokenReview` answer, positive or negative, is reused for the same token
    /// (`--authentication-token-webhook-cache-ttl`). Zero: not cached.
    pub token_ttl: Duration,
    /// How long an allowing `SubjectAccessReview` answer is reused
    /// (`--authorization-webhook-cache-authorized-ttl`). Zero: not cached.
    pub authorized_ttl: Duration,
    /// How long a denying `SubjectAccessReview` answer is reused
    /// (`--authorization-webhook-cache-unauthorized-ttl`). Zero: not cached.
    pub unauthorized_ttl: Duration,
    /// Paths served to anyone, without credentials (`--authorization-always-allow-paths`); an entry ending in `*`
    /// matches every path that starts with what precedes it.
    pub always_allow_paths: Vec<String>,
}

impl Default for AuthConfig {
    /// Upstream's defaults: 10 s caches, `/healthz`, `/readyz` and `/livez` open.
    fn default() -> Self {
        Self {
            token_ttl: Duration::from_secs(10),
            authorized_ttl: Duration::from_secs(10),
            unauthorized_ttl: Duration::from_secs(10),
            always_allow_paths: ["/healthz", "/readyz", "/livez"].map(str::to_owned).to_vec(),
        }
    }
}

impl AuthConfig {
    /// Whether `path` is served without credentials.
    pub fn always_allowed(&self, path: &str) -> bool {
        self.always_allow_paths
            .iter()
            .any(|entry| match entry.strip_suffix('*') {
                Some(prefix) => path.starts_with(prefix),
                None => path == entry,
            })
    }
}

/// A user as the API server's `TokenReview` names it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct User {
    /// `system:serviceaccount:monitoring:prometheus`, for example.
    pub name: String,
    /// The user's UID, when the authenticator gives one.
    pub uid: String,
    /// Groups, such as `system:serviceaccounts`.
    pub groups: Vec<String>,
    /// Extra attributes (a service account token's pod name, for example).
    pub extra: BTreeMap<String, Vec<String>>,
}

/// A request the API server could not review.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The `TokenReview` call failed (API server unreachable, or the controller manager may not create
    /// `tokenreviews`).
    #[error("create tokenreview")]
    TokenReview(#[source] kube::Error),
    /// The `SubjectAccessReview` call failed (API server unreachable, or the controller manager may not create
    /// `subjectaccessreviews`).
    #[error("create subjectaccessreview for {user} {verb} {path}")]
    SubjectAccessReview {
        /// The user.
        user: String,
        /// The verb asked about.
        verb: String,
        /// The path asked about.
        path: String,
        /// Why.
        #[source]
        source: kube::Error,
    },
}

/// The outcome of checking one request.
#[derive(Debug)]
pub enum Verdict {
    /// Serve it.
    Allowed,
    /// No bearer token, or one the API server does not accept: 401.
    Unauthenticated,
    /// A known user without the permission: 403.
    Forbidden {
        /// The user.
        user: String,
        /// The verb (`get`).
        verb: String,
        /// The path.
        path: String,
    },
    /// The API server could not be asked. A failed `TokenReview` is a 401, a failed `SubjectAccessReview` a 500
    /// (as upstream answers).
    Failed(AuthError),
}

/// The bearer token of an `Authorization: Bearer …` header, if there is exactly one well-formed one.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    let value = values.next()?.to_str().ok()?;
    if values.next().is_some() {
        return None;
    }
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && !token.contains(' ')).then_some(token)
}

/// Answers kept until they expire, at most [`CACHE_CAPACITY`].
#[derive(Debug)]
struct TtlCache<K, V> {
    entries: HashMap<K, (V, Instant)>,
}

impl<K: Eq + Hash, V: Clone> TtlCache<K, V> {
    fn new() -> Self {
        Self {
            entries: HashMap::new(),
        }
    }

    fn get(&mut self, key: &K, now: Instant) -> Option<V> {
        match self.entries.get(key) {
            Some((value, expires)) if *expires > now => Some(value.clone()),
            Some(_) => {
                self.entries.remove(key);
                None
            }
            None => None,
        }
    }

    fn insert(&mut self, key: K, value: V, ttl: Duration, now: Instant) {
        if ttl.is_zero() {
            return;
        }
        if self.entries.len() >= CACHE_CAPACITY {
            self.entries.retain(|_, (_, expires)| *expires > now);
            if self.entries.len() >= CACHE_CAPACITY {
                self.entries.clear();
            }
        }
        self.entries.insert(key, (value, now + ttl));
    }
}

type TokenKey = [u8; 32];
type AccessKey = (User, String, String);

/// Checks requests against the API server with `TokenReview` and `SubjectAccessReview`, caching the answers.
/// Tokens are kept only as SHA-256 digests.
pub struct DelegatedAuth {
    client: Client,
    config: AuthConfig,
    tokens: Mutex<TtlCache<TokenKey, Option<User>>>,
    decisions: Mutex<TtlCache<AccessKey, bool>>,
}

impl std::fmt::Debug for DelegatedAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DelegatedAuth")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl DelegatedAuth {
    /// Reviews through `client` (it needs `create` on `tokenreviews` and `subjectaccessreviews`).
    pub fn new(client: Client, config: AuthConfig) -> Self {
        Self {
            client,
            config,
            tokens: Mutex::new(TtlCache::new()),
            decisions: Mutex::new(TtlCache::new()),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &AuthConfig {
        &self.config
    }

    /// Checks a request for `path` with HTTP method `method` and `headers`.
    pub async fn check(&self, method: &http::Method, path: &str, headers: &HeaderMap) -> Verdict {
        if self.config.always_allowed(path) {
            return Verdict::Allowed;
        }
        let Some(token) = bearer_token(headers) else {
            return Verdict::Unauthenticated;
        };
        let user = match self.authenticate(token).await {
            Ok(Some(user)) => user,
            Ok(None) => return Verdict::Unauthenticated,
            Err(error) => return Verdict::Failed(error),
        };
        // Upstream's verb for a non-resource request: the lower-case HTTP method.
        let verb = method.as_str().to_ascii_lowercase();
        match self.authorize(&user, &verb, path).await {
            Ok(true) => Verdict::Allowed,
            Ok(false) => Verdict::Forbidden {
                user: user.name,
                verb,
                path: path.to_owned(),
            },
            Err(error) => Verdict::Failed(error),
        }
    }

    /// The user `token` belongs to, `None` when the API server does not accept it. Answers are cached for
    /// [`AuthConfig::token_ttl`]; failures to ask are not.
    pub async fn authenticate(&self, token: &str) -> Result<Option<User>, AuthError> {
        let key: TokenKey = Sha256::digest(token.as_bytes()).into();
        if let Some(user) = lock(&self.tokens).get(&key, Instant::now()) {
            return Ok(user);
        }
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_owned()),
                audiences: None,
            },
            ..TokenReview::default()
        };
        let answer = Api::<TokenReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(AuthError::TokenReview)?;
        let user = answer
            .status
            .filter(|s| s.authenticated == Some(true))
            .and_then(|s| s.user)
            .and_then(|u| {
                Some(User {
                    name: u.username.filter(|n| !n.is_empty())?,
                    uid: u.uid.unwrap_or_default(),
                    groups: u.groups.unwrap_or_default(),
                    extra: u.extra.unwrap_or_default(),
                })
            });
        lock(&self.tokens).insert(key, user.clone(), self.config.token_ttl, Instant::now());
        Ok(user)
    }

    /// Whether `user` may `verb` the non-resource URL `path`. Answers are cached for
    /// [`AuthConfig::authorized_ttl`] or [`AuthConfig::unauthorized_ttl`]; failures to ask are not.
    pub async fn authorize(&self, user: &User, verb: &str, path: &str) -> Result<bool, AuthError> {
        let key: AccessKey = (user.clone(), verb.to_owned(), path.to_owned());
        if let Some(allowed) = lock(&self.decisions).get(&key, Instant::now()) {
            return Ok(allowed);
        }
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(user.name.clone()),
                uid: (!user.uid.is_empty()).then(|| user.uid.clone()),
                groups: Some(user.groups.clone()),
                extra: (!user.extra.is_empty()).then(|| user.extra.clone()),
                non_resource_attributes: Some(NonResourceAttributes {
                    path: Some(path.to_owned()),
                    verb: Some(verb.to_owned()),
                }),
                resource_attributes: None,
            },
            ..SubjectAccessReview::default()
        };
        let answer = Api::<SubjectAccessReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(|source| AuthError::SubjectAccessReview {
                user: user.name.clone(),
                verb: verb.to_owned(),
                path: path.to_owned(),
                source,
            })?;
        let allowed = answer.status.is_some_and(|s| s.allowed);
        let ttl = if allowed {
            self.config.authorized_ttl
        } else {
            self.config.unauthorized_ttl
        };
        lock(&self.decisions).insert(key, allowed, ttl, Instant::now());
        Ok(allowed)
    }
}

/// The cache, even if a thread panicked while holding it (a cache cannot be left inconsistent by a panic here).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests;
