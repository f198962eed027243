//! NIFCLOUD regions, their zones and their computing endpoints.

use std::fmt;
use std::str::FromStr;

/// The regions the computing API serves, with the availability zones of each.
const REGIONS: &[(&str, &[&str])] = &[
    ("jp-east-1", &["east-11", "east-12", "east-13", "east-14"]),
    ("jp-east-2", &["east-21"]),
    ("jp-east-3", &["east-31"]),
    ("jp-east-4", &["jp-east-41"]),
    ("jp-west-1", &["west-11", "west-12", "west-13"]),
    ("jp-west-2", &["jp-west-21"]),
    ("us-east-1", &["us-east-11"]),
];

/// A NIFCLOUD region such as `jp-east-1`.
///
/// Only the regions NIFCLOUD documents are accepted: a short name such as `east-1` is an error that names the
/// right spelling, never a request to a wrong host.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Region(&'static str);

/// Why a region name was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RegionError {
    /// The name is a short form that the documentation uses but the API hosts do not.
    #[error("unknown NIFCLOUD region {given:?}: write {suggestion:?} (regions are named with their jp-/us- prefix)")]
    ShortName {
        /// The name that was given.
        given: String,
        /// The full region name meant.
        suggestion: String,
    },
    /// The name is not a NIFCLOUD region at all.
    #[error("unknown NIFCLOUD region {given:?}: expected one of {known}")]
    Unknown {
        /// The name that was given.
        given: String,
        /// The known regions, comma separated.
        known: String,
    },
}

impl Region {
    /// Parses a region name, accepting only the documented regions.
    pub fn new(name: &str) -> Result<Self, RegionError> {
        let name = name.trim();
        if let Some((region, _)) = REGIONS.iter().find(|(r, _)| *r == name) {
            return Ok(Region(region));
        }
        let prefixed = format!("jp-{name}");
        if let Some((region, _)) = REGIONS.iter().find(|(r, _)| *r == prefixed) {
            return Err(RegionError::ShortName {
                given: name.to_owned(),
                suggestion: (*region).to_owned(),
            });
        }
        Err(RegionError::Unknown {
            given: name.to_owned(),
            known: REGIONS.iter().map(|(r, _)| *r).collect::<Vec<_>>().join(", "),
        })
    }

    /// Every region the SDK knows.
    pub fn all() -> impl Iterator<Item = Region> {
        REGIONS.iter().map(|(r, _)| Region(r))
    }

    /// The region's name, for example `jp-east-1`.
    pub fn name(&self) -> &'static str {
        self.0
    }

    /// The availability zones of this region, for example `east-11`.
    pub fn zones(&self) -> &'static [&'static str] {
        REGIONS
            .iter()
            .find(|(r, _)| *r == self.0)
            .map(|(_, z)| *z)
            .unwrap_or(&[])
    }

    /// The region a zone belongs to, if the zone is known.
    pub fn of_zone(zone: &str) -> Option<Region> {
        REGIONS
            .iter()
            .find(|(_, zones)| zones.contains(&zone))
            .map(|(r, _)| Region(r))
    }

    /// The computing API endpoint of this region: `https://{region}.computing.api.nifcloud.com/api/`.
    pub fn computing_endpoint(&self) -> String {
        format!("https://{}.computing.api.nifcloud.com/api/", self.0)
    }
}

impl FromStr for Region {
    type Err = RegionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Region::new(s)
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_region_resolves_to_its_host() {
        let cases = [
            ("jp-east-1", "https://jp-east-1.computing.api.nifcloud.com/api/"),
            ("jp-east-2", "https://jp-east-2.computing.api.nifcloud.com/api/"),
            ("jp-east-3", "https://jp-east-3.computing.api.nifcloud.com/api/"),
            ("jp-east-4", "https://jp-east-4.computing.api.nifcloud.com/api/"),
            ("jp-west-1", "https://jp-west-1.computing.api.nifcloud.com/api/"),
            ("jp-west-2", "https://jp-west-2.computing.api.nifcloud.com/api/"),
            ("us-east-1", "https://us-east-1.computing.api.nifcloud.com/api/"),
        ];
        for (name, url) in cases {
            assert_eq!(Region::new(name).unwrap().computing_endpoint(), url);
        }
        assert_eq!(Region::all().count(), 7);
    }

    #[test]
    fn short_names_are_refused_with_the_right_spelling() {
        let err = Region::new("east-1").unwrap_err();
        assert_eq!(
            err,
            RegionError::ShortName {
                given: "east-1".into(),
                suggestion: "jp-east-1".into()
            }
        );
        assert!(err.to_string().contains("jp-east-1"));
        assert!(matches!(Region::new("eu-central-1"), Err(RegionError::Unknown { .. })));
        assert!(matches!(Region::new(""), Err(RegionError::Unknown { .. })));
    }

    #[test]
    fn zones_map_back_to_regions() {
        assert_eq!(Region::of_zone("east-12").unwrap().name(), "jp-east-1");
        assert_eq!(Region::of_zone("jp-west-21").unwrap().name(), "jp-west-2");
        assert_eq!(
            Region::new("jp-west-1").unwrap().zones(),
            &["west-11", "west-12", "west-13"]
        );
        assert!(Region::of_zone("mars-1").is_none());
    }
}
