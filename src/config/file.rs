//! Reading config files: the seed's `wsc:` section, in YAML or JSON.
//!
//! The section holds two structs' keys side by side: [`HubConfig`]'s own and
//! the retry policy's ([`RetryKeys`]), flat as the seed writes them. serde's
//! `flatten` would merge them, but it buffers the keys it does not know, so
//! errors in them lose their line and column, and an unknown key is only
//! noticed (without a position) after the whole section. Instead the section
//! is read twice, and each pass shows one struct only its own keys through
//! [`Filter`], which also rejects a key neither struct has, at its position,
//! and notes which key a value error belongs to. Both structs are plain
//! serde derives: a new key is a new field, nothing here.

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;
use std::path::Path;
use std::sync::OnceLock;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor,
};

use super::retry_keys::RetryKeys;
use super::{ConfigError, HubConfig};

/// The file formats [`HubConfig`] reads.
///
/// ```
/// # use std::path::Path;
/// # use wshub::config::ConfigFormat;
/// assert_eq!(ConfigFormat::from_path(Path::new("hub.yml")), Some(ConfigFormat::Yaml));
/// assert_eq!(ConfigFormat::from_path(Path::new("hub.toml")), None);
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConfigFormat {
    /// YAML (`.yaml`, `.yml`).
    Yaml,
    /// JSON (`.json`).
    Json,
}

impl ConfigFormat {
    /// The format for a file name's extension (case-insensitive).
    ///
    /// ```
    /// # use std::path::Path;
    /// # use wshub::config::ConfigFormat;
    /// assert_eq!(ConfigFormat::from_path(Path::new("/etc/HUB.JSON")), Some(ConfigFormat::Json));
    /// ```
    pub fn from_path(path: &Path) -> Option<ConfigFormat> {
        let ext = path.extension()?.to_str()?;
        if ext.eq_ignore_ascii_case("yaml") || ext.eq_ignore_ascii_case("yml") {
            Some(ConfigFormat::Yaml)
        } else if ext.eq_ignore_ascii_case("json") {
            Some(ConfigFormat::Json)
        } else {
            None
        }
    }
}

impl fmt::Display for ConfigFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConfigFormat::Yaml => "YAML",
            ConfigFormat::Json => "JSON",
        })
    }
}

impl HubConfig {
    /// Reads and validates a `.yaml`, `.yml` or `.json` file.
    ///
    /// # Errors
    ///
    /// [`ConfigError::UnknownExtension`] or [`ConfigError::Io`] for the file
    /// itself, then everything [`from_str_as`](Self::from_str_as) reports.
    ///
    /// ```
    /// # use wshub::config::{ConfigError, HubConfig};
    /// let dir = std::env::temp_dir().join(format!("wshub-doc-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir).unwrap();
    /// let path = dir.join("hub.json");
    /// std::fs::write(&path, r#"{"wsc": {"max_retries": 1}}"#).unwrap();
    /// assert_eq!(HubConfig::from_file(&path).unwrap().retry.max_retries, 1);
    /// assert!(matches!(
    ///     HubConfig::from_file(dir.join("hub.ini")),
    ///     Err(ConfigError::UnknownExtension { .. })
    /// ));
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// ```
    pub fn from_file(path: impl AsRef<Path>) -> Result<HubConfig, ConfigError> {
        let path = path.as_ref();
        let format =
            ConfigFormat::from_path(path).ok_or_else(|| ConfigError::UnknownExtension {
                path: path.to_owned(),
            })?;
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_owned(),
            source,
        })?;
        HubConfig::from_str_as(&text, format)
    }

    /// Parses and validates YAML text. An empty document gives the defaults.
    ///
    /// # Errors
    ///
    /// As [`from_str_as`](Self::from_str_as).
    ///
    /// ```
    /// # use wshub::config::HubConfig;
    /// assert_eq!(HubConfig::from_yaml_str("").unwrap(), HubConfig::default());
    /// ```
    pub fn from_yaml_str(text: &str) -> Result<HubConfig, ConfigError> {
        HubConfig::from_str_as(text, ConfigFormat::Yaml)
    }

    /// Parses and validates JSON text.
    ///
    /// # Errors
    ///
    /// As [`from_str_as`](Self::from_str_as).
    ///
    /// ```
    /// # use wshub::config::HubConfig;
    /// let cfg = HubConfig::from_json_str(r#"{"wsc": {"jitter": "full"}}"#).unwrap();
    /// assert_eq!(cfg.retry.jitter, wshub::retry::Jitter::Full);
    /// ```
    pub fn from_json_str(text: &str) -> Result<HubConfig, ConfigError> {
        HubConfig::from_str_as(text, ConfigFormat::Json)
    }

    /// Parses and validates text in the given format.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Parse`] for malformed text, unknown keys and values
    /// that cannot be read (with the key, and line and column where the
    /// parser knows them); [`ConfigError::Retry`] for classification lists
    /// that overlap; then everything [`validate`](Self::validate) reports.
    ///
    /// ```
    /// # use wshub::config::{ConfigFormat, HubConfig};
    /// let cfg = HubConfig::from_str_as("{}", ConfigFormat::Json).unwrap();
    /// assert_eq!(cfg, HubConfig::default());
    /// ```
    pub fn from_str_as(text: &str, format: ConfigFormat) -> Result<HubConfig, ConfigError> {
        let mut config: HubConfig = read_part(text, format)?;
        let retry: RetryKeys = read_part(text, format)?;
        config.retry = retry.into_policy()?;
        config.validate()?;
        Ok(config)
    }
}

/// Reads the keys of one part (`T`) of the `wsc:` section.
fn read_part<T: DeserializeOwned + Default>(
    text: &str,
    format: ConfigFormat,
) -> Result<T, ConfigError> {
    let key = Cell::new(None);
    let root = RootMap {
        key: &key,
        part: PhantomData::<fn() -> T>,
    };
    let parse_error =
        |line: Option<u64>, column: Option<u64>, message: String| ConfigError::Parse {
            format,
            key: key.get(),
            line,
            column,
            message,
        };
    match format {
        ConfigFormat::Yaml => {
            serde_saphyr::with_deserializer_from_str(text, |de| NullIsDefault(root).deserialize(de))
                .map_err(|e| {
                    let loc = e.location();
                    // Our Display already says it is an error.
                    let message = e.to_string().trim_start_matches("error: ").to_owned();
                    parse_error(loc.map(|l| l.line()), loc.map(|l| l.column()), message)
                })
        }
        ConfigFormat::Json => {
            let mut de = serde_json::Deserializer::from_str(text);
            NullIsDefault(root)
                .deserialize(&mut de)
                .and_then(|v| de.end().map(|()| v))
                .map_err(|e| {
                    // serde_json reports line 0 when it has no position.
                    let located = e.line() > 0;
                    parse_error(
                        located.then_some(e.line() as u64),
                        located.then_some(e.column() as u64),
                        e.to_string(),
                    )
                })
        }
    }
}

/// Every key the `wsc:` section accepts: the retry policy's, then the hub's
/// (its nested `retry` map is the struct's serde form, not the file's).
fn section_keys() -> &'static [&'static str] {
    static KEYS: OnceLock<Vec<&'static str>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let mut keys = field_names::<RetryKeys>().to_vec();
        keys.extend(field_names::<HubConfig>().iter().filter(|&&k| k != "retry"));
        keys
    })
}

/// The names (aliases included) that serde's derive knows for struct `T`.
///
/// The derived `Deserialize` hands them to `deserialize_struct`; this asks
/// for a `T` from a deserializer that only catches them there.
fn field_names<T: DeserializeOwned>() -> &'static [&'static str] {
    struct Catch<'a>(&'a mut &'static [&'static str]);

    impl<'de> Deserializer<'de> for Catch<'_> {
        type Error = de::value::Error;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(de::Error::custom("caught"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }

    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Catch(&mut fields));
    fields
}

/// Reads `null`, or an empty document, as the default, and anything else
/// with the wrapped seed.
struct NullIsDefault<S>(S);

impl<'de, S> DeserializeSeed<'de> for NullIsDefault<S>
where
    S: DeserializeSeed<'de>,
    S::Value: Default,
{
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<S::Value, D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de, S> Visitor<'de> for NullIsDefault<S>
where
    S: DeserializeSeed<'de>,
    S::Value: Default,
{
    type Value = S::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map, or nothing")
    }

    fn visit_none<E: de::Error>(self) -> Result<S::Value, E> {
        Ok(S::Value::default())
    }

    fn visit_unit<E: de::Error>(self) -> Result<S::Value, E> {
        Ok(S::Value::default())
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<S::Value, D::Error> {
        self.0.deserialize(d)
    }
}

/// The file's root: a map whose only key is `wsc`.
struct RootMap<'k, T> {
    key: &'k Cell<Option<&'static str>>,
    part: PhantomData<fn() -> T>,
}

impl<'de, T: DeserializeOwned + Default> DeserializeSeed<'de> for RootMap<'_, T> {
    type Value = T;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, T: DeserializeOwned + Default> Visitor<'de> for RootMap<'_, T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map with the key `wsc`")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<T, A::Error> {
        let mut section = None;
        while let Some(name) = map.next_key::<Cow<'de, str>>()? {
            if name != "wsc" {
                return Err(de::Error::unknown_field(&name, &["wsc"]));
            }
            if section.is_some() {
                return Err(de::Error::duplicate_field("wsc"));
            }
            let part = Part {
                key: self.key,
                part: self.part,
            };
            section = Some(map.next_value_seed(NullIsDefault(part))?);
        }
        Ok(section.unwrap_or_default())
    }
}

/// The `wsc:` section, read as `T` through a [`Filter`].
struct Part<'k, T> {
    key: &'k Cell<Option<&'static str>>,
    part: PhantomData<fn() -> T>,
}

impl<'de, T: DeserializeOwned> DeserializeSeed<'de> for Part<'_, T> {
    type Value = T;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        T::deserialize(Filter {
            inner: d,
            own: field_names::<T>(),
            key: self.key,
        })
    }
}

/// A map deserializer that shows its visitor only the keys in `own`,
/// skips the other section keys, rejects any other key where it stands, and
/// records in `key` which key's value is being read.
struct Filter<'k, D> {
    inner: D,
    own: &'static [&'static str],
    key: &'k Cell<Option<&'static str>>,
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Filter<'_, D> {
    type Error = D::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        let Filter { inner, own, key } = self;
        inner.deserialize_map(Filter {
            inner: visitor,
            own,
            key,
        })
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

/// The visitor side: hands the derived visitor a filtered map.
impl<'de, V: Visitor<'de>> Visitor<'de> for Filter<'_, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.expecting(f)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        let Filter { inner, own, key } = self;
        inner.visit_map(Filter {
            inner: map,
            own,
            key,
        })
    }
}

/// The map side: the keys the visitor sees.
impl<'de, A: MapAccess<'de>> MapAccess<'de> for Filter<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        loop {
            self.key.set(None);
            let Some(name) = self.inner.next_key::<Cow<'de, str>>()? else {
                return Ok(None);
            };
            let keys = section_keys();
            let Some(&known) = keys.iter().find(|&&k| k == name) else {
                return Err(de::Error::unknown_field(&name, keys));
            };
            if self.own.contains(&known) {
                self.key.set(Some(known));
                let name = de::value::BorrowedStrDeserializer::new(known);
                return seed.deserialize(name).map(Some);
            }
            self.inner.next_value::<IgnoredAny>()?;
        }
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, A::Error> {
        self.inner.next_value_seed(seed)
    }
}

#[cfg(test)]
mod tests;
