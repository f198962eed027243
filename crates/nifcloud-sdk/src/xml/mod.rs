//! Reply parsing: the generated output types read in one pass, a small tolerant tree for error documents, and
//! the scalar conversions both use.
//!
//! The API's replies do not always match the model: element names change case (`AccountingType` for
//! `accountingType`), numbers come typed as strings, numeric and timestamp elements are sent empty
//! (`<size/>`), and timestamps carry offsets (`2024-06-25T16:21:47.000+09:00`). Reading therefore compares
//! names ASCII-case-insensitively, empty numbers and timestamps become `None`, surrounding whitespace is
//! ignored for non-string scalars, and unknown elements are skipped.
//!
//! No stray element is read as data:
//! - a list's entries are its `item` and `member` children (the two entry names the API uses); any other child of
//!   a list element (a `<description>` inside `<attachmentSet>`) is skipped, never read as an empty entry;
//! - an element the model reads as one value (a scalar or a structure) that appears again in the same structure
//!   with another value is an error ([`XmlError::Repeated`]), not "the last one wins"; the same element
//!   repeated with the same value is read once. A repeated list element adds its entries to the list.
//!
//! Typed outputs ([`from_str`]) are read straight from the reply by [`XmlReader`], without a tree in between;
//! [`parse`] builds an [`XmlNode`] tree, and [`parse_partial`] reads what it can of a document cut short (a
//! truncated error reply).

mod lexer;
mod stream;
mod tree;

use std::fmt;
use std::str::FromStr;

use time::format_description::BorrowedFormatItem;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::parsing::Parsed;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

pub use stream::{Element, XmlReader};
pub use tree::{XmlNode, parse, parse_partial, request_id};

/// Whether `name` is a list entry's name: `item` (EC2 style) or `member` (ELB style), ASCII case-insensitive.
pub fn is_entry_name(name: &str) -> bool {
    name.eq_ignore_ascii_case("item") || name.eq_ignore_ascii_case("member")
}

/// A reply could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    /// The body is not well-formed XML.
    #[error("malformed XML at byte {position}: {message}")]
    Syntax {
        /// Byte offset where the reader stopped.
        position: u64,
        /// What the XML reader reported.
        message: String,
    },
    /// The body holds no element at all.
    #[error("the reply holds no XML element")]
    NoRootElement,
    /// An element's text is not a valid value of the model's type.
    #[error("element {path}: {value:?} is not a valid {kind}")]
    InvalidValue {
        /// Slash-separated element path, outermost first.
        path: String,
        /// The expected type (`integer`, `boolean`, `double`, `timestamp`).
        kind: &'static str,
        /// The offending text.
        value: String,
    },
    /// An element that holds one value (a scalar or a structure) appears more than once in the same structure
    /// with different contents, so the reply does not say which one holds.
    #[error("element {path} appears more than once with different contents: {first:?}, then {again:?}")]
    Repeated {
        /// Slash-separated element path, outermost first.
        path: String,
        /// The first occurrence's text (or its number of child elements).
        first: String,
        /// The later occurrence's text (or its number of child elements).
        again: String,
    },
}

impl XmlError {
    /// The same error with `parent` prepended to its element path.
    pub fn within(self, parent: &str) -> Self {
        match self {
            XmlError::InvalidValue { path, kind, value } => XmlError::InvalidValue {
                path: format!("{parent}/{path}"),
                kind,
                value,
            },
            XmlError::Repeated { path, first, again } => XmlError::Repeated {
                path: format!("{parent}/{path}"),
                first,
                again,
            },
            other => other,
        }
    }
}

/// A type read from a reply element (every generated output type).
///
/// Values are read in place: the reader makes a default value where the output holds it (a list's new entry, an
/// optional member's slot) and fills it, so a large structure is never moved after it is read.
pub trait FromXml: Default {
    /// Reads the element `el` whose start tag `r` has just read, up to and including its end tag, into `self`
    /// (a default value).
    fn read_xml<'a>(&mut self, r: &mut XmlReader<'a>, el: &Element<'a>) -> Result<(), XmlError>;

    /// The request ID this value carries, when it is a whole reply (`requestId` or
    /// `ResponseMetadata/RequestId`), trimmed; `None` when absent or empty.
    fn request_id(&self) -> Option<&str> {
        None
    }
}

/// Reads a whole reply into `T` in one pass: the root element is `T`, whatever its name.
pub fn from_str<T: FromXml>(body: &str) -> Result<T, XmlError> {
    let mut r = XmlReader::new(body);
    let root = r.root()?;
    let mut out = T::default();
    out.read_xml(&mut r, &root)?;
    Ok(out)
}

/// `id` trimmed, `None` when that leaves nothing: how the generated [`FromXml::request_id`] reports it.
pub fn trimmed_id(id: Option<&str>) -> Option<&str> {
    id.map(str::trim).filter(|id| !id.is_empty())
}

/// A scalar type the generated code reads from an element's text (shown as text in error messages).
pub trait XmlScalar: Sized + fmt::Display {
    /// The type's name in error messages.
    const KIND: &'static str;
    /// Converts the element text; `Ok(None)` for an empty value, `Err(())` for an invalid one.
    #[allow(clippy::result_unit_err)]
    fn from_text(text: &str) -> Result<Option<Self>, ()>;
}

impl XmlScalar for String {
    const KIND: &'static str = "string";
    fn from_text(text: &str) -> Result<Option<Self>, ()> {
        Ok(Some(text.to_owned()))
    }
}

impl XmlScalar for compact_str::CompactString {
    const KIND: &'static str = "string";
    fn from_text(text: &str) -> Result<Option<Self>, ()> {
        Ok(Some(compact_str::CompactString::new(text)))
    }
}

impl XmlScalar for i64 {
    const KIND: &'static str = "integer";
    fn from_text(text: &str) -> Result<Option<Self>, ()> {
        let t = text.trim();
        if t.is_empty() {
            return Ok(None);
        }
        t.parse().map(Some).map_err(|_| ())
    }
}

impl XmlScalar for f64 {
    const KIND: &'static str = "double";
    fn from_text(text: &str) -> Result<Option<Self>, ()> {
        let t = text.trim();
        if t.is_empty() {
            return Ok(None);
        }
        t.parse().map(Some).map_err(|_| ())
    }
}

impl XmlScalar for bool {
    const KIND: &'static str = "boolean";
    fn from_text(text: &str) -> Result<Option<Self>, ()> {
        let t = text.trim();
        if t.is_empty() {
            Ok(None)
        } else if t.eq_ignore_ascii_case("true") || t == "1" {
            Ok(Some(true))
        } else if t.eq_ignore_ascii_case("false") || t == "0" {
            Ok(Some(false))
        } else {
            Err(())
        }
    }
}

impl XmlScalar for Timestamp {
    const KIND: &'static str = "timestamp";
    fn from_text(text: &str) -> Result<Option<Self>, ()> {
        let t = text.trim();
        if t.is_empty() {
            return Ok(None);
        }
        Timestamp::parse(t).map(Some).map_err(|_| ())
    }
}

/// A point in time as the API sent it, offset kept (`2024-06-25T16:21:47.000+09:00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub OffsetDateTime);

/// A text is not a timestamp this SDK understands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a timestamp (expected YYYY-MM-DD[Thh:mm[:ss[.f]]][Z|±hh:mm])")]
pub struct TimestampError(pub String);

/// Every form [`Timestamp::parse`] accepts: the date with `-` or `/`, then optionally `T`, `t` or a space and
/// `hh:mm[:ss[.fraction]]` (`.` or `,` before the fraction), then optionally `Z`, `z` or `±hh[[:]mm]`.
const TIMESTAMP_FORMAT: &[BorrowedFormatItem<'_>] = format_description!(
    version = 2,
    "[first [[year]-[month]-[day]] [[year]/[month]/[day]]]\
     [optional [[first [T] [t] [ ]][hour]:[minute][optional [:[second][optional [[first [.] [,]][subsecond]]]]]]]\
     [optional [[first [Z] [z] [[offset_hour sign:mandatory][optional [[optional [:]][offset_minute]]]]]]]"
);

impl Timestamp {
    /// Parses `YYYY-MM-DD`, optionally followed by `T` (or a space) and `hh:mm[:ss[.fraction]]`, optionally
    /// followed by `Z` or an offset `±hh[:mm]`/`±hhmm`. A missing time means midnight, a missing offset UTC.
    /// `/` may separate the date. Surrounding whitespace is ignored.
    pub fn parse(s: &str) -> Result<Self, TimestampError> {
        parse_timestamp(s.trim()).ok_or_else(|| TimestampError(s.to_owned()))
    }

    /// The instant as a `time` value.
    pub fn into_inner(self) -> OffsetDateTime {
        self.0
    }

    /// Seconds since the Unix epoch.
    pub fn unix_timestamp(&self) -> i64 {
        self.0.unix_timestamp()
    }
}

impl From<OffsetDateTime> for Timestamp {
    fn from(t: OffsetDateTime) -> Self {
        Timestamp(t)
    }
}

impl FromStr for Timestamp {
    type Err = TimestampError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Timestamp::parse(s)
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 with the original offset, e.g. `2024-06-25T16:21:47+09:00` (fraction only when not zero, `Z` for
    /// UTC). A value RFC 3339 cannot hold (a year outside 0–9999 or an offset with seconds, which no parsed
    /// timestamp has) is shown in `time`'s own notation.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.format(&Rfc3339) {
            Ok(s) => f.write_str(&s),
            Err(_) => write!(f, "{}", self.0),
        }
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Timestamp::parse(&s).map_err(serde::de::Error::custom)
    }
}

fn parse_timestamp(s: &str) -> Option<Timestamp> {
    parse_usual_timestamp(s.as_bytes()).or_else(|| parse_any_timestamp(s))
}

/// The form the API sends, `YYYY-MM-DDThh:mm:ss[.fraction](Z|±hh:mm)`, read directly (the general parser takes
/// several times as long); `None` for any other form or an invalid value, left to [`parse_any_timestamp`].
fn parse_usual_timestamp(s: &[u8]) -> Option<Timestamp> {
    let number = |digits: &[u8]| {
        digits
            .iter()
            .try_fold(0u32, |n, &d| d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0')))
    };
    let (date_time, rest) = s.split_at_checked(19)?;
    let separators = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if separators.iter().any(|&(at, separator)| date_time[at] != separator) {
        return None;
    }
    let field = |at: usize, len: usize| number(&date_time[at..at + len]);
    let (rest, nanosecond) = match rest.strip_prefix(b".") {
        Some(fraction) => {
            let len = fraction.iter().take_while(|d| d.is_ascii_digit()).count();
            if !(1..=9).contains(&len) {
                return None;
            }
            (&fraction[len..], number(&fraction[..len])? * 10u32.pow(9 - len as u32))
        }
        None => (rest, 0),
    };
    let offset = match *rest {
        [b'Z'] => UtcOffset::UTC,
        [sign @ (b'+' | b'-'), oh1, oh2, b':', om1, om2] => {
            let (hours, minutes) = (number(&[oh1, oh2])? as i8, number(&[om1, om2])? as i8);
            match sign {
                b'+' => UtcOffset::from_hms(hours, minutes, 0).ok()?,
                _ => UtcOffset::from_hms(-hours, -minutes, 0).ok()?,
            }
        }
        _ => return None,
    };
    let date = Date::from_calendar_date(
        field(0, 4)? as i32,
        Month::try_from(field(5, 2)? as u8).ok()?,
        field(8, 2)? as u8,
    );
    let time = Time::from_hms_nano(
        field(11, 2)? as u8,
        field(14, 2)? as u8,
        field(17, 2)? as u8,
        nanosecond,
    );
    Some(Timestamp(
        PrimitiveDateTime::new(date.ok()?, time.ok()?).assume_offset(offset),
    ))
}

/// Every form [`Timestamp::parse`] accepts, with `time`'s parser.
fn parse_any_timestamp(s: &str) -> Option<Timestamp> {
    // `time` reads a sign before the year (`-2024-06-25`); the API never sends one.
    if s.starts_with(['+', '-']) {
        return None;
    }
    let mut parsed = Parsed::new();
    let rest = parsed.parse_items(s.as_bytes(), TIMESTAMP_FORMAT).ok()?;
    if !rest.is_empty() {
        return None;
    }
    if parsed.hour_24().is_none() {
        parsed = parsed.with_hour_24(0)?;
    }
    if parsed.offset_hour().is_none() {
        parsed = parsed.with_offset_hour(0)?;
    }
    OffsetDateTime::try_from(parsed).ok().map(Timestamp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_are_tolerant_but_not_silent() {
        assert_eq!(i64::from_text(" 100 \n"), Ok(Some(100)));
        assert_eq!(i64::from_text(""), Ok(None));
        assert_eq!(i64::from_text("ten"), Err(()));
        assert_eq!(bool::from_text("true"), Ok(Some(true)));
        assert_eq!(bool::from_text(" 0 "), Ok(Some(false)));
        assert_eq!(bool::from_text(""), Ok(None));
        assert_eq!(bool::from_text("yes"), Err(()));
        assert_eq!(f64::from_text("1.5"), Ok(Some(1.5)));
        assert_eq!(String::from_text(" x "), Ok(Some(" x ".to_owned())));
        assert_eq!(String::from_text(""), Ok(Some(String::new())));
        let err = XmlError::InvalidValue {
            path: "size".into(),
            kind: "integer",
            value: "ten".into(),
        }
        .within("item")
        .within("volumeSet");
        assert_eq!(
            err.to_string(),
            "element volumeSet/item/size: \"ten\" is not a valid integer"
        );
    }

    #[test]
    fn timestamps_with_offsets_fractions_and_without_zone() {
        let t = Timestamp::parse("2024-06-25T16:21:47.000+09:00").unwrap();
        assert_eq!(t.unix_timestamp(), 1_719_300_107);
        assert_eq!(t.to_string(), "2024-06-25T16:21:47+09:00");
        assert_eq!(Timestamp::parse("2024-06-25T07:21:47Z").unwrap(), t);
        assert_eq!(Timestamp::parse("2024-06-25 07:21:47").unwrap(), t);
        assert_eq!(
            Timestamp::parse("2024-06-25T07:21:47.5Z").unwrap().to_string(),
            "2024-06-25T07:21:47.5Z"
        );
        assert_eq!(Timestamp::parse("2024-06-25T01:21:47-0600").unwrap(), t);
        assert_eq!(
            Timestamp::parse("2024/06/25").unwrap().to_string(),
            "2024-06-25T00:00:00Z"
        );
        assert_eq!(
            Timestamp::parse("2024-06-25t07:21z").unwrap().to_string(),
            "2024-06-25T07:21:00Z"
        );
        assert_eq!(
            Timestamp::parse("2024-06-25T07:21:47,25-00:30").unwrap().to_string(),
            "2024-06-25T07:21:47.25-00:30"
        );
        assert_eq!(Timestamp::parse(" 2024-06-25T16:21:47+09 ").unwrap(), t);
        // The usual form, read directly, reads as the general parser reads it.
        for usual in [
            "2024-06-25T16:21:47.000+09:00",
            "2024-06-25T07:21:47Z",
            "2024-06-25T07:21:47.123456789-05:30",
            "2024-06-25T07:21:47.5-00:30",
            "2024-02-29T23:59:59+14:00",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999999-23:59",
        ] {
            let direct = parse_usual_timestamp(usual.as_bytes());
            assert!(direct.is_some(), "{usual}");
            assert_eq!(direct, parse_any_timestamp(usual), "{usual}");
        }
        for unusual in [
            "2024-06-25T07:21:47",
            "2024-06-25 07:21:47Z",
            "2024-06-25T07:21:47.Z",
            "2024-06-25T07:21:47.1234567890Z",
            "2024-06-25T07:21:47+0900",
            "2024-06-25T07:21:47z",
            "2023-02-29T07:21:47Z",
            "2024-06-25T24:00:00Z",
            "2024-06-25T07:21:60Z",
            "2024-06-25T07:21:47+26:00",
            "2024-06-2aT07:21:47Z",
            "+024-06-25T07:21:47Z",
        ] {
            assert_eq!(parse_usual_timestamp(unusual.as_bytes()), None, "{unusual}");
        }
        for bad in [
            "2024-13-25",
            "yesterday",
            "2024-06-25T07:21:47Zjunk",
            "2024-06/25",
            "-2024-06-25",
            "2024-06-25T07",
            "2024-06-25T07:21:47.Z",
        ] {
            assert_eq!(Timestamp::parse(bad), Err(TimestampError(bad.to_owned())), "{bad}");
        }
    }
}
