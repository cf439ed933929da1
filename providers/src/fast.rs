//! Reading vendor bodies fast without changing what they read to.
//!
//! A fast reading keeps message texts as the vendor escaped them ([`Text`])
//! and looks into the JSON it only searches (Chatling's `data`) without
//! building a `serde_json::Value` ([`Looked`]). What it reads, it reads to the
//! very values the exact reading (`String`s and `Value`s, as before) gives.
//! What it cannot read so (a value of another kind, an escaped lone surrogate,
//! serde_json's private raw-value key) fails it, and [`read_twice`] then reads
//! the body the exact way: every answer and every error stays what it was.
//!
//! Each adapter's wire types take the reading as a type parameter: [`Text`]
//! where the exact reading has a `String`, a [`Looked`] type where it has a
//! `Value`.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::text::JsonText;
use crate::wire;

/// A vendor string as the fast reading of a body takes it: a [`JsonText`] that
/// keeps the vendor's bytes when they are already the answer's. Anything
/// serde_json would not read into a `String` (another kind of value, an escaped
/// lone surrogate) fails to read here, so the caller reads the body again the
/// way it always did ([`read_twice`]) and answers with what that gives, its
/// errors word for word.
#[cfg_attr(test, derive(Debug, PartialEq))]
pub(crate) struct Text(JsonText);

impl Text {
    /// A text read otherwise (by [`crate::pull::Reader`]) to what this
    /// reading gives.
    pub(crate) fn new(text: JsonText) -> Self {
        Self(text)
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let json = <&'de RawValue>::deserialize(d)?;
        JsonText::from_json(json)
            .map(Text)
            .ok_or_else(|| de::Error::custom("not a string as a `String` reads one"))
    }
}

/// A vendor string held by a wire type: [`Text`] on the fast reading,
/// `String` on the exact one.
pub(crate) trait VendorString {
    /// The string as the model holds text.
    fn into_text(self) -> JsonText;
}

impl VendorString for Text {
    fn into_text(self) -> JsonText {
        self.0
    }
}

impl VendorString for String {
    fn into_text(self) -> JsonText {
        JsonText::new(&self)
    }
}

/// A vendor value that is text when it is a string: [`Text`] on the fast
/// reading (which reads only strings), any JSON value on the exact one.
pub(crate) trait VendorValue {
    /// The text, or `None` when the value is not a string.
    fn into_text(self) -> Option<JsonText>;
}

impl VendorValue for Text {
    fn into_text(self) -> Option<JsonText> {
        Some(self.0)
    }
}

impl VendorValue for serde_json::Value {
    fn into_text(self) -> Option<JsonText> {
        match self {
            serde_json::Value::String(s) => Some(JsonText::new(&s)),
            _ => None,
        }
    }
}

/// A JSON value a fast reading looks into without building a
/// `serde_json::Value`: it is read through `deserialize_any`, as a `Value`
/// is, so it fails exactly where and how a `Value` would (numbers out of
/// range, escaped lone surrogates, nesting too deep), and each kind of value
/// is handed to the implementation, which keeps what it needs. What it does
/// not look into is read as [`Checked`].
pub(crate) trait Looked: Sized {
    /// An object, entry by entry (keys matched with [`Key`]); by default
    /// checked and taken as [`other`](Self::other).
    fn object<'de, A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        check_object(map)?;
        Ok(Self::other())
    }

    /// An array; by default checked and taken as [`other`](Self::other).
    fn array<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<Self, A::Error> {
        while seq.next_element::<Checked>()?.is_some() {}
        Ok(Self::other())
    }

    /// A string; by default taken as [`other`](Self::other).
    fn string(_: &str) -> Self {
        Self::other()
    }

    /// Any other value (`null`, a boolean, a number), and the default for
    /// every kind not handled otherwise.
    fn other() -> Self;
}

/// Reads a [`Looked`] value: the one `deserialize_any` visitor for all of them.
pub(crate) fn read_looked<'de, L: Looked, D: Deserializer<'de>>(d: D) -> Result<L, D::Error> {
    struct V<L>(PhantomData<L>);
    impl<'de, L: Looked> Visitor<'de> for V<L> {
        type Value = L;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_unit<E: de::Error>(self) -> Result<L, E> {
            Ok(L::other())
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<L, E> {
            Ok(L::other())
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<L, E> {
            Ok(L::other())
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<L, E> {
            Ok(L::other())
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<L, E> {
            Ok(L::other())
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<L, E> {
            Ok(L::string(v))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<L, A::Error> {
            L::array(seq)
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<L, A::Error> {
            L::object(map)
        }
    }
    d.deserialize_any(V(PhantomData))
}

/// Any JSON value, checked as [`Looked`] checks one, and dropped.
pub(crate) struct Checked;

impl Looked for Checked {
    fn other() -> Self {
        Checked
    }
}

/// Implements `Deserialize` for [`Looked`] types, each read by [`read_looked`]:
/// a blanket implementation over `Looked` is not allowed for serde's trait.
macro_rules! deserialize_looked {
    ($($looked:ty),+ $(,)?) => {$(
        impl<'de> serde::Deserialize<'de> for $looked {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                $crate::fast::read_looked(d)
            }
        }
    )+};
}
pub(crate) use deserialize_looked;

deserialize_looked!(Checked);

/// Checks every entry of an object.
pub(crate) fn check_object<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_key_seed(Key(&[]))?.is_some() {
        map.next_value::<Checked>()?;
    }
    Ok(())
}

/// An object key, read as a `Value` reads one, matched against the names a
/// [`Looked`] implementation wants: `Some(i)` for `self.0[i]`, `None` for
/// another key. serde_json's private raw-value key, which a `Value` reads
/// specially, fails the (fast) reading.
pub(crate) struct Key(pub &'static [&'static str]);

/// The key serde_json's `Value` takes for a raw value rather than an entry.
const RAW_VALUE_KEY: &str = "$serde_json::private::RawValue";

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<usize>, D::Error> {
        struct V(&'static [&'static str]);
        impl Visitor<'_> for V {
            type Value = Option<usize>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<usize>, E> {
                if v == RAW_VALUE_KEY {
                    return Err(E::custom("serde_json's raw value key"));
                }
                Ok(self.0.iter().position(|name| *name == v))
            }
        }
        d.deserialize_str(V(self.0))
    }
}

/// A vendor body read by [`read_twice`]: as `F`, whose strings are [`Text`],
/// or, when that failed, as `E`, the same shape read as it always was.
pub(crate) enum Reading<F, E> {
    /// Read fast.
    Fast(F),
    /// Read exactly as before this crate kept vendor text escaped.
    Exact(E),
}

/// `fast()` when it succeeds, else `exact()`: the one rule of every fast
/// reading. `fast`'s error is dropped, so whatever fails to read fast gets
/// what the exact reading gives, which is what it always got: a value, or the
/// same error in the same words. Only a body that fails pays for two readings.
pub(crate) fn fast_or_exact<F, E, Ignored, Error>(
    fast: impl FnOnce() -> Result<F, Ignored>,
    exact: impl FnOnce() -> Result<E, Error>,
) -> Result<Reading<F, E>, Error> {
    match fast() {
        Ok(fast) => Ok(Reading::Fast(fast)),
        Err(_) => exact().map(Reading::Exact),
    }
}

/// Reads `json` as `F` and, only if that fails, as `E`: the same wire shape
/// with `String`s (or `Value`s) where `F` has [`Text`]. Whatever `F` reads, `E`
/// reads too, to the same texts, so a body that reads fast is normalized
/// exactly as before ([`fast_or_exact`]).
pub(crate) fn read_twice<'a, F: Deserialize<'a>, E: Deserialize<'a>>(
    json: &'a str,
) -> serde_json::Result<Reading<F, E>> {
    fast_or_exact(|| serde_json::from_str(json), || serde_json::from_str(json))
}

/// [`read_twice`] for a whole vendor body, read as [`wire::from_body`] reads it.
pub(crate) fn read_body_twice<'a, F: Deserialize<'a>, E: Deserialize<'a>>(
    body: &'a [u8],
) -> serde_json::Result<Reading<F, E>> {
    fast_or_exact(|| wire::from_body(body), || wire::from_body(body))
}
