//! Rust names for model names.

/// `DNSName` → `dns_name`, `IpAddressV6` → `ip_address_v6`, `requestId` → `request_id`.
pub fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() {
            let prev = if i > 0 { chars.get(i - 1).copied() } else { None };
            let next = chars.get(i + 1).copied();
            let boundary = match prev {
                None => false,
                Some(p) if p.is_ascii_lowercase() || p.is_ascii_digit() => true,
                Some(p) if p.is_ascii_uppercase() => next.is_some_and(|n| n.is_ascii_lowercase()),
                _ => false,
            };
            if boundary && !out.ends_with('_') {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    out
}

const KEYWORDS: &[&str] = &[
    "as", "break", "const", "continue", "crate", "else", "enum", "extern", "false", "fn", "for", "if", "impl", "in",
    "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return", "self", "static", "struct", "super", "trait",
    "true", "type", "unsafe", "use", "where", "while", "async", "await", "dyn", "abstract", "become", "box", "do",
    "final", "macro", "override", "priv", "typeof", "unsized", "virtual", "yield", "try", "gen",
];

/// A snake-case name usable as a field or method: keywords become raw identifiers (`r#type`).
pub fn field_ident(snake: &str) -> String {
    if KEYWORDS.contains(&snake) {
        format!("r#{snake}")
    } else {
        snake.to_owned()
    }
}

/// Names of the prelude and of items the generated code relies on, which a generated type must not take.
const RESERVED_TYPES: &[&str] = &[
    "Option",
    "Result",
    "String",
    "CompactString",
    "Vec",
    "Box",
    "Some",
    "None",
    "Ok",
    "Err",
    "Default",
    "Clone",
    "Copy",
    "Debug",
    "PartialEq",
    "Eq",
    "Send",
    "Sync",
    "Sized",
    "Iterator",
    "IntoIterator",
    "Into",
    "From",
    "Self",
    "Timestamp",
];

/// The Rust type name of a structure shape (prelude names get a `Type` suffix: `Option` → `OptionType`).
pub fn type_name(shape: &str, taken: &dyn Fn(&str) -> bool) -> String {
    if !RESERVED_TYPES.contains(&shape) {
        return shape.to_owned();
    }
    let mut candidate = format!("{shape}Type");
    while taken(&candidate) {
        candidate.push('_');
    }
    candidate
}

/// Method names a setter must not take (they would shadow trait methods callers use).
pub fn setter_name(field_snake: &str) -> String {
    #[rustfmt::skip]
    const SHADOWING: &[&str] = &[
        "default", "clone", "eq", "ne", "fmt", "serialize", "validate", "to_params", "missing_required", "read_xml",
        "add", "sub", "mul", "div", "rem", "neg", "not", "shl", "shr", "bitand", "bitor", "bitxor", "deref",
        "deref_mut", "drop", "index", "index_mut", "from_str", "hash", "cmp", "partial_cmp", "as_ref", "as_mut",
        "borrow", "borrow_mut", "into_iter", "next", "from", "into",
    ];
    if SHADOWING.contains(&field_snake) {
        format!("set_{field_snake}")
    } else {
        field_ident(field_snake)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_case_handles_acronyms_and_digits() {
        assert_eq!(snake_case("DNSName"), "dns_name");
        assert_eq!(snake_case("IPAddresses"), "ip_addresses");
        assert_eq!(snake_case("SSLCertificateId"), "ssl_certificate_id");
        assert_eq!(snake_case("IpAddressV6"), "ip_address_v6");
        assert_eq!(snake_case("requestId"), "request_id");
        assert_eq!(
            snake_case("NiftyDescribeElasticLoadBalancers"),
            "nifty_describe_elastic_load_balancers"
        );
        assert_eq!(snake_case("DDay"), "d_day");
        assert_eq!(snake_case("ipv6Address"), "ipv6_address");
    }

    #[test]
    fn reserved_names_are_escaped() {
        assert_eq!(field_ident("type"), "r#type");
        assert_eq!(field_ident("volume_id"), "volume_id");
        assert_eq!(type_name("Option", &|_| false), "OptionType");
        assert_eq!(type_name("Option", &|n| n == "OptionType"), "OptionType_");
        assert_eq!(type_name("Volume", &|_| false), "Volume");
        assert_eq!(setter_name("default"), "set_default");
        assert_eq!(setter_name("type"), "r#type");
        assert_eq!(setter_name("add"), "set_add");
    }
}
