//! Access keys and where they come from: an explicit value, the environment, or the official CLI's profile files.
//!
//! The secret key never appears in `Debug` or `Display` output.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// Environment variable holding the access key id (as the official SDKs read it).
pub const ENV_ACCESS_KEY_ID: &str = "NIFCLOUD_ACCESS_KEY_ID";
/// Environment variable holding the secret access key.
pub const ENV_SECRET_ACCESS_KEY: &str = "NIFCLOUD_SECRET_ACCESS_KEY";
/// Environment variables naming the profile to read from the profile files, in order of precedence.
pub const ENV_PROFILE: [&str; 2] = ["NIFCLOUD_DEFAULT_PROFILE", "NIFCLOUD_PROFILE"];
/// Environment variable overriding the path of the credentials file (default `~/.nifcloud/credentials`).
pub const ENV_CREDENTIALS_FILE: &str = "NIFCLOUD_SHARED_CREDENTIALS_FILE";
/// Environment variable overriding the path of the config file (default `~/.nifcloud/config`).
pub const ENV_CONFIG_FILE: &str = "NIFCLOUD_CONFIG_FILE";

/// A secret string: compared and used, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The secret itself, for signing.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// An access key pair for the computing API.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    access_key_id: String,
    secret_access_key: Secret,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key)
            .finish()
    }
}

/// Why credentials could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// No source held an access key pair.
    #[error(
        "no NIFCLOUD credentials found: set {ENV_ACCESS_KEY_ID} and {ENV_SECRET_ACCESS_KEY}, or add \
         nifcloud_access_key_id/nifcloud_secret_access_key to profile {profile:?} in {files}"
    )]
    NotFound {
        /// The profile that was looked up.
        profile: String,
        /// The files that were read.
        files: String,
    },
    /// Only one half of the pair was set.
    #[error("incomplete NIFCLOUD credentials in {source_name}: {missing} is missing")]
    Incomplete {
        /// Where the half pair was found.
        source_name: String,
        /// The missing key.
        missing: &'static str,
    },
    /// A profile file exists but could not be read.
    #[error("cannot read {path}")]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
}

impl Credentials {
    /// Credentials from explicit values.
    pub fn new(access_key_id: impl Into<String>, secret_access_key: impl Into<String>) -> Self {
        Credentials {
            access_key_id: access_key_id.into(),
            secret_access_key: Secret::new(secret_access_key),
        }
    }

    /// The access key id (not secret: it is sent with every request).
    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    /// The secret access key.
    pub fn secret_access_key(&self) -> &Secret {
        &self.secret_access_key
    }

    /// Credentials from the environment only; `Ok(None)` when neither variable is set.
    pub fn from_env() -> Result<Option<Self>, CredentialsError> {
        from_pair(
            std::env::var(ENV_ACCESS_KEY_ID).ok(),
            std::env::var(ENV_SECRET_ACCESS_KEY).ok(),
            "the environment",
            ENV_ACCESS_KEY_ID,
            ENV_SECRET_ACCESS_KEY,
        )
    }

    /// The default chain: the environment, then the profile files of the official CLI.
    pub fn from_default_chain() -> Result<Self, CredentialsError> {
        if let Some(c) = Self::from_env()? {
            return Ok(c);
        }
        let files = ProfileFiles::from_env();
        let profile = ProfileFiles::profile_from_env();
        match files.credentials(&profile)? {
            Some(c) => Ok(c),
            None => Err(CredentialsError::NotFound {
                profile,
                files: files.describe(),
            }),
        }
    }
}

fn from_pair(
    id: Option<String>,
    secret: Option<String>,
    source_name: &str,
    id_key: &'static str,
    secret_key: &'static str,
) -> Result<Option<Credentials>, CredentialsError> {
    let id = id.filter(|v| !v.trim().is_empty());
    let secret = secret.filter(|v| !v.trim().is_empty());
    match (id, secret) {
        (Some(id), Some(secret)) => Ok(Some(Credentials::new(id.trim(), secret.trim()))),
        (None, None) => Ok(None),
        (Some(_), None) => Err(CredentialsError::Incomplete {
            source_name: source_name.into(),
            missing: secret_key,
        }),
        (None, Some(_)) => Err(CredentialsError::Incomplete {
            source_name: source_name.into(),
            missing: id_key,
        }),
    }
}

/// The official CLI's profile files: `~/.nifcloud/credentials` and `~/.nifcloud/config`.
#[derive(Clone, Debug)]
pub struct ProfileFiles {
    /// Path of the credentials file.
    pub credentials_file: PathBuf,
    /// Path of the config file.
    pub config_file: PathBuf,
}

impl ProfileFiles {
    /// The files named by the environment, or the defaults under the home directory.
    pub fn from_env() -> Self {
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
        let pick = |var: &str, default: &str| {
            std::env::var_os(var)
                .map(PathBuf::from)
                .unwrap_or_else(|| home.join(".nifcloud").join(default))
        };
        ProfileFiles {
            credentials_file: pick(ENV_CREDENTIALS_FILE, "credentials"),
            config_file: pick(ENV_CONFIG_FILE, "config"),
        }
    }

    /// The profile named by the environment, else `default`.
    pub fn profile_from_env() -> String {
        ENV_PROFILE
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|p| !p.is_empty()))
            .unwrap_or_else(|| "default".to_owned())
    }

    fn describe(&self) -> String {
        format!("{} and {}", self.credentials_file.display(), self.config_file.display())
    }

    /// The access key pair of `profile`: the credentials file first, then the config file.
    pub fn credentials(&self, profile: &str) -> Result<Option<Credentials>, CredentialsError> {
        for (path, section) in [
            (&self.credentials_file, profile.to_owned()),
            (&self.config_file, config_section(profile)),
        ] {
            let Some(values) = read_section(path, &section)? else {
                continue;
            };
            let found = from_pair(
                values.get("nifcloud_access_key_id").cloned(),
                values.get("nifcloud_secret_access_key").cloned(),
                &format!("{} [{section}]", path.display()),
                "nifcloud_access_key_id",
                "nifcloud_secret_access_key",
            )?;
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }

    /// The `region` setting of `profile` in the config file.
    pub fn region(&self, profile: &str) -> Result<Option<String>, CredentialsError> {
        Ok(read_section(&self.config_file, &config_section(profile))?.and_then(|mut v| v.remove("region")))
    }
}

/// In the config file, profiles other than `default` are written `[profile NAME]`.
fn config_section(profile: &str) -> String {
    if profile == "default" {
        "default".to_owned()
    } else {
        format!("profile {profile}")
    }
}

fn read_section(path: &Path, section: &str) -> Result<Option<HashMap<String, String>>, CredentialsError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(parse_ini_section(&text, section)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CredentialsError::ReadFile {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Reads the keys of one `[section]` of an INI text; `None` when the section is absent.
pub fn parse_ini_section(text: &str, section: &str) -> Option<HashMap<String, String>> {
    let mut current: Option<&str> = None;
    let mut out: Option<HashMap<String, String>> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = Some(name.trim());
            if current == Some(section) && out.is_none() {
                out = Some(HashMap::new());
            }
            continue;
        }
        if current == Some(section)
            && let (Some(map), Some((k, v))) = (out.as_mut(), line.split_once('='))
        {
            map.insert(k.trim().to_owned(), v.trim().to_owned());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let c = Credentials::new("AKID", "very-secret-key");
        let shown = format!("{c:?}");
        assert!(shown.contains("AKID"));
        assert!(!shown.contains("very-secret-key"), "{shown}");
    }

    #[test]
    fn ini_sections_are_read_by_name() {
        let text = "[default]\nnifcloud_access_key_id = A\nnifcloud_secret_access_key=B\n\n[profile dev]\nregion = jp-west-1\n# comment\n";
        let d = parse_ini_section(text, "default").unwrap();
        assert_eq!(d["nifcloud_access_key_id"], "A");
        assert_eq!(d["nifcloud_secret_access_key"], "B");
        assert_eq!(parse_ini_section(text, "profile dev").unwrap()["region"], "jp-west-1");
        assert!(parse_ini_section(text, "missing").is_none());
    }

    #[test]
    fn profile_files_give_credentials_and_region() {
        let dir = tempfile::tempdir().unwrap();
        let files = ProfileFiles {
            credentials_file: dir.path().join("credentials"),
            config_file: dir.path().join("config"),
        };
        assert!(files.credentials("default").unwrap().is_none());
        std::fs::write(
            &files.credentials_file,
            "[prod]\nnifcloud_access_key_id=K\nnifcloud_secret_access_key=S\n",
        )
        .unwrap();
        std::fs::write(
            &files.config_file,
            "[profile prod]\nregion=jp-east-3\n[profile half]\nnifcloud_access_key_id=X\n",
        )
        .unwrap();
        let c = files.credentials("prod").unwrap().unwrap();
        assert_eq!(c.access_key_id(), "K");
        assert_eq!(c.secret_access_key().expose(), "S");
        assert_eq!(files.region("prod").unwrap().as_deref(), Some("jp-east-3"));
        let err = files.credentials("half").unwrap_err();
        assert!(
            err.to_string().contains("nifcloud_secret_access_key is missing"),
            "{err}"
        );
    }

    #[test]
    fn half_a_pair_is_an_error_not_a_fallback() {
        let err = from_pair(
            Some("A".into()),
            None,
            "the environment",
            ENV_ACCESS_KEY_ID,
            ENV_SECRET_ACCESS_KEY,
        )
        .unwrap_err();
        assert!(err.to_string().contains(ENV_SECRET_ACCESS_KEY));
        assert!(from_pair(Some(" ".into()), None, "env", "a", "b").unwrap().is_none());
    }
}
