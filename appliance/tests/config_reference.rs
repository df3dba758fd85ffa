//! docs/configuration.md documents exactly the keys the serde structs accept, and the
//! generated example (with its disabled lines enabled) sets every one of them.
//!
//! The key list comes from the serde structs themselves: a probing `Deserializer` walks
//! `RawConfig`, records the fields each struct asks for, and descends into nested tables,
//! arrays and maps. Leaf keys are written as dotted paths without indices
//! (`sip.listener.transport`); map entries as `<name>` (`teams.resolve.<name>`).

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;

use portcullis::config::raw::RawConfig;
use portcullis::config::EXAMPLE_TOML;
use serde::de::value::{Error, StrDeserializer};
use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};
use serde::Deserialize;

type Keys = Rc<RefCell<BTreeSet<String>>>;

/// The one entry a probed map yields.
const MAP_ENTRY: &[&str] = &["<name>"];

struct Probe {
    path: String,
    keys: Keys,
}

impl Probe {
    fn leaf(&self) {
        self.keys.borrow_mut().insert(self.path.clone());
    }
    fn child(&self, key: &str) -> Self {
        let path = if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        };
        Self {
            path,
            keys: Rc::clone(&self.keys),
        }
    }
    fn same(&self) -> Self {
        Self {
            path: self.path.clone(),
            keys: Rc::clone(&self.keys),
        }
    }
}

macro_rules! leaf {
    ($($m:ident => $body:expr;)*) => {$(
        fn $m<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
            self.leaf();
            #[allow(clippy::redundant_closure_call)]
            ($body)(v)
        }
    )*};
}

impl<'de> de::Deserializer<'de> for Probe {
    type Error = Error;

    leaf! {
        deserialize_any => |v: V| v.visit_str("");
        deserialize_bool => |v: V| v.visit_bool(false);
        deserialize_i8 => |v: V| v.visit_u64(0);
        deserialize_i16 => |v: V| v.visit_u64(0);
        deserialize_i32 => |v: V| v.visit_u64(0);
        deserialize_i64 => |v: V| v.visit_u64(0);
        deserialize_u8 => |v: V| v.visit_u64(0);
        deserialize_u16 => |v: V| v.visit_u64(0);
        deserialize_u32 => |v: V| v.visit_u64(0);
        deserialize_u64 => |v: V| v.visit_u64(0);
        deserialize_f32 => |v: V| v.visit_f64(0.0);
        deserialize_f64 => |v: V| v.visit_f64(0.0);
        deserialize_char => |v: V| v.visit_char('0');
        deserialize_str => |v: V| v.visit_str("");
        deserialize_string => |v: V| v.visit_str("");
        deserialize_bytes => |v: V| v.visit_bytes(b"");
        deserialize_byte_buf => |v: V| v.visit_bytes(b"");
        deserialize_unit => |v: V| v.visit_unit();
        deserialize_identifier => |v: V| v.visit_str("");
        deserialize_ignored_any => |v: V| v.visit_unit();
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_some(self)
    }
    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        v: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_unit(v)
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        v: V,
    ) -> Result<V::Value, Error> {
        v.visit_newtype_struct(self)
    }
    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_seq(One(Some(self)))
    }
    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, v: V) -> Result<V::Value, Error> {
        self.deserialize_seq(v)
    }
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: usize,
        v: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(v)
    }
    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        let child = self.child("<name>");
        v.visit_map(Fields {
            names: MAP_ENTRY.iter().copied(),
            parent: self,
            pending: Some(child),
        })
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Error> {
        v.visit_map(Fields {
            names: fields.iter().copied(),
            parent: self,
            pending: None,
        })
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Error> {
        self.leaf();
        let first: StrDeserializer<'_, Error> =
            variants.first().copied().unwrap_or("").into_deserializer();
        v.visit_enum(first)
    }
}

/// A sequence with one element, probed at the parent's path.
struct One(Option<Probe>);

impl<'de> de::SeqAccess<'de> for One {
    type Error = Error;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        self.0.take().map(|p| seed.deserialize(p)).transpose()
    }
}

/// The fields of a struct (or one `<name>` entry of a map), each probed at `parent.field`.
struct Fields {
    names: std::iter::Copied<std::slice::Iter<'static, &'static str>>,
    parent: Probe,
    pending: Option<Probe>,
}

impl<'de> de::MapAccess<'de> for Fields {
    type Error = Error;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let Some(name) = self.names.next() else {
            return Ok(None);
        };
        self.pending = Some(self.parent.child(name));
        let key: StrDeserializer<'_, Error> = name.into_deserializer();
        seed.deserialize(key).map(Some)
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let p = self.pending.take().unwrap_or_else(|| self.parent.same());
        seed.deserialize(p)
    }
}

fn schema_keys() -> BTreeSet<String> {
    let keys: Keys = Rc::default();
    RawConfig::deserialize(Probe {
        path: String::new(),
        keys: Rc::clone(&keys),
    })
    .expect("probe RawConfig");
    let out = keys.borrow().clone();
    out
}

/// Leaf keys set by a TOML document.
fn document_keys(v: &toml::Value, path: &str, out: &mut BTreeSet<String>) {
    match v {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let k = if path == "teams.resolve" {
                    "<name>"
                } else {
                    k.as_str()
                };
                let p = if path.is_empty() {
                    k.to_owned()
                } else {
                    format!("{path}.{k}")
                };
                document_keys(v, &p, out);
            }
        }
        toml::Value::Array(a) if a.iter().any(toml::Value::is_table) => {
            for v in a {
                document_keys(v, path, out);
            }
        }
        _ => {
            out.insert(path.to_owned());
        }
    }
}

/// The example with its disabled settings (`#key`, `#[table]`, `#"quoted key"`) enabled.
fn enabled_example() -> String {
    EXAMPLE_TOML
        .lines()
        .map(|l| match l.strip_prefix('#') {
            Some(rest)
                if rest
                    .starts_with(|c: char| c.is_ascii_alphanumeric() || c == '[' || c == '"') =>
            {
                rest
            }
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Keys in the first column of the reference tables: rows that start with "| `".
fn documented_keys() -> BTreeSet<String> {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/configuration.md"
    ))
    .expect("read docs/configuration.md");
    doc.lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once('`').map(|(k, _)| k.to_owned()))
        .collect()
}

fn diff(a: &BTreeSet<String>, b: &BTreeSet<String>) -> Vec<String> {
    a.difference(b).cloned().collect()
}

#[test]
fn schema_probe_sees_nested_tables_arrays_and_maps() {
    let keys = schema_keys();
    for k in [
        "node.name",
        "sip.listener.transport",
        "sip.limits.max_message_size",
        "media.cores",
        "trunk.credentials.password",
        "route.translate_called.replace",
        "teams.resolve.<name>",
    ] {
        assert!(keys.contains(k), "probe missed {k}: {keys:?}");
    }
    assert!(
        !keys.contains("sip") && !keys.contains("trunk.credentials"),
        "tables are not leaves"
    );
}

#[test]
fn docs_list_exactly_the_schema_keys() {
    let schema = schema_keys();
    let documented = documented_keys();
    assert!(
        documented.len() > 50,
        "too few keys parsed from the doc: {documented:?}"
    );
    assert_eq!(
        diff(&schema, &documented),
        Vec::<String>::new(),
        "keys missing from docs/configuration.md"
    );
    assert_eq!(
        diff(&documented, &schema),
        Vec::<String>::new(),
        "documented keys that do not exist"
    );
}

#[test]
fn generated_example_sets_every_key() {
    let full: toml::Value = toml::from_str(&enabled_example()).expect("enabled example parses");
    let mut set = BTreeSet::new();
    document_keys(&full, "", &mut set);
    let schema = schema_keys();
    assert_eq!(
        diff(&schema, &set),
        Vec::<String>::new(),
        "keys the generated example never shows"
    );
    assert_eq!(
        diff(&set, &schema),
        Vec::<String>::new(),
        "example keys unknown to the schema"
    );
    // And the enabled example is valid apart from its (absent) certificate files.
    let opts = portcullis::config::LoadOptions {
        check_files: false,
        host: portcullis::config::HostInfo::with_cpus(2),
    };
    portcullis::config::Config::from_toml(
        &enabled_example(),
        std::path::Path::new("/etc/portcullis"),
        &opts,
    )
    .unwrap_or_else(|d| panic!("{d:#?}"));
}
