//! Vocabularies: categorical values to dense u32 ids, fitted on the train split or hashed.
//!
//! # Fitted
//!
//! Id 0 is the out-of-vocabulary id: values unseen in train and values seen fewer than
//! `min_count` times in train. Ids `1..=len` go to the kept values in order of decreasing train
//! count, ties broken by the value itself, so a fit is deterministic. With `max_size`, only the
//! first `max_size` values of that ranking are kept; the others map to the OOV id as rare values
//! do.
//!
//! Null is a category of its own, distinct from the empty string and from every value: when the
//! train split holds at least `min_count` nulls, the vocabulary reserves the id after the kept
//! values for it (`len + 1`); otherwise nulls map to the OOV id, as rare values do. Null is not
//! one of the `max_size` values.
//!
//! The in-memory fit ([`Fitter`], [`RangeFitter`]) sees a whole column at once; the streaming fit
//! ([`VocabCounter`], `counter.rs`) counts chunk after chunk, exactly or in bounded memory.
//!
//! # Hashed
//!
//! [`Vocab::hashed`] needs no fit: the id of a value is `1 + h(value) mod buckets` with `h` the
//! stable hash of `hashing.rs` (XXH64, seed 0, of the value's UTF-8 text, an integer as its
//! decimal text), null has the id `buckets + 1`, and no value is out of vocabulary.

mod counter;
mod hashing;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::column::{KeyKind, KeyRef};
use crate::spec::MAX_HASH_BUCKETS;

pub(crate) use counter::VocabCounter;

/// The out-of-vocabulary id.
pub const OOV: u32 = 0;

/// The kept values in id order (`keys[i]` has id `i + 1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VocabKeys {
    /// Text values.
    Str(Vec<String>),
    /// Integer values.
    Int(Vec<i64>),
}

/// A vocabulary, fitted or hashed (see the module's documentation).
///
/// A fitted one serialises as its keys (`{"str": [...]}` or `{"int": [...]}`) and `"null": true`
/// when null has an id; the lookup table is rebuilt on load. A hashed one serialises as
/// `{"hash_buckets": N}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "VocabRepr", into = "VocabRepr")]
pub struct Vocab {
    /// The kept values (empty for a hashed vocabulary).
    keys: VocabKeys,
    /// The id of null, when the train split had enough nulls to keep it (always, hashed).
    null_id: Option<u32>,
    /// The number of buckets of a hashed vocabulary.
    buckets: Option<u32>,
    str_ids: FxHashMap<String, u32>,
    int_ids: FxHashMap<i64, u32>,
}

/// The serialised form of a [`Vocab`]: exactly one of `str`, `int` and `hash_buckets`.
#[derive(Serialize, Deserialize)]
struct VocabRepr {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    str: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    int: Option<Vec<i64>>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    null: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hash_buckets: Option<u32>,
}

impl TryFrom<VocabRepr> for Vocab {
    type Error = String;

    fn try_from(r: VocabRepr) -> Result<Self, String> {
        match (r.str, r.int, r.hash_buckets) {
            (Some(keys), None, None) => Ok(Vocab::new(VocabKeys::Str(keys), r.null)),
            (None, Some(keys), None) => Ok(Vocab::new(VocabKeys::Int(keys), r.null)),
            (None, None, Some(b)) if !r.null && (1..=MAX_HASH_BUCKETS).contains(&b) => {
                Ok(Vocab::hashed(b))
            }
            (None, None, Some(b)) if !r.null => Err(format!(
                "hash_buckets = {b} must be in 1..={MAX_HASH_BUCKETS}"
            )),
            _ => Err(
                "a vocabulary holds exactly one of `str`, `int` and `hash_buckets` \
                      (`null` only beside `str` or `int`)"
                    .to_string(),
            ),
        }
    }
}

impl From<Vocab> for VocabRepr {
    fn from(v: Vocab) -> Self {
        let mut r = VocabRepr {
            str: None,
            int: None,
            null: false,
            hash_buckets: v.buckets,
        };
        if v.buckets.is_none() {
            r.null = v.null_id.is_some();
            match v.keys {
                VocabKeys::Str(k) => r.str = Some(k),
                VocabKeys::Int(k) => r.int = Some(k),
            }
        }
        r
    }
}

impl PartialEq for Vocab {
    fn eq(&self, other: &Self) -> bool {
        self.keys == other.keys && self.null_id == other.null_id && self.buckets == other.buckets
    }
}

impl Vocab {
    /// The vocabulary of `keys` (in id order), with an id for null after them when `null`.
    pub fn new(keys: VocabKeys, null: bool) -> Self {
        let mut v = Vocab::from(keys);
        if null {
            v.null_id = Some(v.size() as u32);
        }
        v
    }

    /// A hashed vocabulary of `buckets` buckets: no fit, no stored values. The id of a value is
    /// `1 + h(value) mod buckets`, where `h` is XXH64 with seed 0 of the value's canonical bytes
    /// (text as its UTF-8 bytes, an integer as its decimal text, so that an id column read as
    /// integers or as text gets the same ids); null has the id `buckets + 1`; no value is out of
    /// vocabulary (id 0 is never given), and [`Vocab::size`] is `buckets + 2`. Distinct values
    /// can share an id (a collision). The hash is pinned by tests: ids never change between
    /// versions.
    ///
    /// # Panics
    ///
    /// When `buckets` is not in `1..=MAX_HASH_BUCKETS` (2^30), the range `dataset.toml` accepts.
    pub fn hashed(buckets: u32) -> Self {
        assert!(
            (1..=MAX_HASH_BUCKETS).contains(&buckets),
            "hash_buckets = {buckets} must be in 1..={MAX_HASH_BUCKETS}"
        );
        Vocab {
            keys: VocabKeys::Str(Vec::new()),
            null_id: Some(buckets + 1),
            buckets: Some(buckets),
            str_ids: FxHashMap::default(),
            int_ids: FxHashMap::default(),
        }
    }

    /// Whether the vocabulary is hashed ([`Vocab::hashed`]) rather than fitted.
    pub fn is_hashed(&self) -> bool {
        self.buckets.is_some()
    }

    /// The number of buckets of a hashed vocabulary; `None` for a fitted one.
    pub fn hash_buckets(&self) -> Option<u32> {
        self.buckets
    }
}

impl From<VocabKeys> for Vocab {
    fn from(keys: VocabKeys) -> Self {
        let mut str_ids = FxHashMap::default();
        let mut int_ids = FxHashMap::default();
        match &keys {
            VocabKeys::Str(v) => {
                str_ids.reserve(v.len());
                for (i, k) in v.iter().enumerate() {
                    str_ids.insert(k.clone(), i as u32 + 1);
                }
            }
            VocabKeys::Int(v) => {
                int_ids.reserve(v.len());
                for (i, &k) in v.iter().enumerate() {
                    int_ids.insert(k, i as u32 + 1);
                }
            }
        }
        Vocab {
            keys,
            null_id: None,
            buckets: None,
            str_ids,
            int_ids,
        }
    }
}

/// Fits a vocabulary and encodes in one pass: every value gets a provisional index when first
/// seen (in any split) and counts only where it is seen in train; [`Fitter::finish`] then ranks
/// the kept values and returns the map from provisional index to final id. `K` is `i64` for
/// integer columns and `&str` for text.
#[derive(Debug)]
pub(crate) struct Fitter<K> {
    index: FxHashMap<K, u32>,
    keys: Vec<K>,
    counts: Vec<u32>,
    /// Nulls seen in train.
    nulls: u32,
}

impl<K> Default for Fitter<K> {
    fn default() -> Self {
        Fitter {
            index: FxHashMap::default(),
            keys: Vec::new(),
            counts: Vec::new(),
            nulls: 0,
        }
    }
}

/// The result of a fit: the kept values in id order, the final id of every provisional index, and
/// whether null has an id (see the module's documentation).
#[derive(Debug)]
pub(crate) struct Fitted<K> {
    pub(crate) keys: Vec<K>,
    pub(crate) remap: Vec<u32>,
    pub(crate) null: bool,
}

impl<K> Fitted<K> {
    /// The final id of a provisional index ([`NULL`] for null).
    #[inline]
    pub(crate) fn id(&self, provisional: u32) -> u32 {
        if provisional != NULL {
            self.remap[provisional as usize]
        } else if self.null {
            self.keys.len() as u32 + 1
        } else {
            OOV
        }
    }
}

/// The provisional index of a null value.
pub(crate) const NULL: u32 = u32::MAX;

/// As [`Fitter<i64>`] for integer keys in a known range `lo..=hi`: a direct table instead of a
/// hash map (ids of real logs are usually dense integers, and the table is several times faster).
#[derive(Debug)]
pub(crate) struct RangeFitter {
    lo: i64,
    slots: Vec<u32>,
    inner: Fitter<i64>,
}

impl RangeFitter {
    /// `None` when the range is too wide for a table of about `4 * rows` entries (at least 2^20).
    pub(crate) fn new(lo: i64, hi: i64, rows: usize) -> Option<Self> {
        let width = hi.checked_sub(lo)?.checked_add(1)?;
        let limit = (4 * rows as i64).max(1 << 20);
        (width > 0 && width <= limit).then(|| RangeFitter {
            lo,
            slots: vec![NULL; width as usize],
            inner: Fitter::default(),
        })
    }

    /// The provisional index of `key` (which must lie in the range), counting it when `train`.
    #[inline]
    pub(crate) fn add(&mut self, key: Option<i64>, train: bool) -> u32 {
        let Some(key) = key else {
            self.inner.nulls += u32::from(train);
            return NULL;
        };
        let slot = &mut self.slots[(key - self.lo) as usize];
        if *slot == NULL {
            *slot = self.inner.keys.len() as u32;
            self.inner.keys.push(key);
            self.inner.counts.push(0);
        }
        self.inner.counts[*slot as usize] += u32::from(train);
        *slot
    }

    /// As [`Fitter::finish`].
    pub(crate) fn finish(self, min_count: u32, max_size: Option<usize>) -> Fitted<i64> {
        self.inner.finish(min_count, max_size)
    }
}

impl<K: std::hash::Hash + Eq + Ord + Copy> Fitter<K> {
    /// The provisional index of `key`, counting it when `train`.
    #[inline]
    pub(crate) fn add(&mut self, key: Option<K>, train: bool) -> u32 {
        let Some(key) = key else {
            self.nulls += u32::from(train);
            return NULL;
        };
        let next = self.keys.len() as u32;
        let i = *self.index.entry(key).or_insert(next);
        if i == next {
            self.keys.push(key);
            self.counts.push(0);
        }
        self.counts[i as usize] += u32::from(train);
        i
    }

    /// Keeps the values counted at least `min_count` times (at least once), ranked by decreasing
    /// count then value, the first `max_size` of them when given (the others map to the OOV id,
    /// as rare values do), and null when it was counted at least `min_count` times (null is not
    /// one of the `max_size`).
    pub(crate) fn finish(self, min_count: u32, max_size: Option<usize>) -> Fitted<K> {
        let min_count = min_count.max(1);
        let mut kept: Vec<u32> = (0..self.keys.len() as u32)
            .filter(|&i| self.counts[i as usize] >= min_count)
            .collect();
        kept.sort_unstable_by(|&a, &b| {
            let (a, b) = (a as usize, b as usize);
            self.counts[b]
                .cmp(&self.counts[a])
                .then_with(|| self.keys[a].cmp(&self.keys[b]))
        });
        if let Some(m) = max_size {
            kept.truncate(m);
        }
        let mut remap = vec![OOV; self.keys.len()];
        for (rank, &i) in kept.iter().enumerate() {
            remap[i as usize] = rank as u32 + 1;
        }
        Fitted {
            keys: kept.iter().map(|&i| self.keys[i as usize]).collect(),
            remap,
            null: self.nulls >= min_count,
        }
    }
}

impl Vocab {
    /// The number of ids, the OOV id (and null's) included: an embedding table needs this many
    /// rows. For a hashed vocabulary, `buckets + 2`.
    pub fn size(&self) -> usize {
        if let Some(b) = self.buckets {
            return b as usize + 2;
        }
        1 + usize::from(self.null_id.is_some())
            + match &self.keys {
                VocabKeys::Str(v) => v.len(),
                VocabKeys::Int(v) => v.len(),
            }
    }

    /// The id of null, when it has one (always for a hashed vocabulary: `buckets + 1`).
    pub fn null_id(&self) -> Option<u32> {
        self.null_id
    }

    /// The kind of the kept values. A hashed vocabulary holds none and takes either kind: check a
    /// column against a vocabulary with [`Vocab::accepts`], which lets it through.
    pub(crate) fn kind(&self) -> KeyKind {
        match self.keys {
            VocabKeys::Str(_) => KeyKind::Str,
            VocabKeys::Int(_) => KeyKind::Int,
        }
    }

    /// Whether a column of keys of `kind` can be encoded with this vocabulary: a fitted one
    /// takes the kind it was fitted on, a hashed one either.
    pub(crate) fn accepts(&self, kind: KeyKind) -> bool {
        self.is_hashed() || self.kind() == kind
    }

    /// The kept values, in id order (none for a hashed vocabulary).
    pub fn keys(&self) -> &VocabKeys {
        &self.keys
    }

    /// The id of a value; `OOV` for unknown values, and for nulls when null has no id. A hashed
    /// vocabulary takes text and integer keys alike (an integer as its decimal text).
    #[inline]
    pub(crate) fn id(&self, key: Option<KeyRef<'_>>) -> u32 {
        if let Some(b) = self.buckets {
            return match key {
                Some(k) => hashing::bucket_id(k, b),
                None => b + 1,
            };
        }
        match key {
            Some(KeyRef::Str(s)) => self.str_ids.get(s).copied().unwrap_or(OOV),
            Some(KeyRef::Int(i)) => self.int_ids.get(&i).copied().unwrap_or(OOV),
            None => self.null_id.unwrap_or(OOV),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab_of_strs(f: Fitter<&str>, min_count: u32) -> (Vocab, Fitted<&str>) {
        let fitted = f.finish(min_count, None);
        let keys = VocabKeys::Str(fitted.keys.iter().map(|s| s.to_string()).collect());
        (Vocab::new(keys, fitted.null), fitted)
    }

    #[test]
    fn ids_by_count_then_value_with_min_count_counting_train_only() {
        let mut f = Fitter::default();
        let mut prov = Vec::new();
        for k in ["b", "a", "c", "a", "b", "d", "a"] {
            prov.push(f.add(Some(k), true));
        }
        // A null outside train: not counted, so with no null in train, null maps to OOV.
        prov.push(f.add(None, false));
        // Seen only outside train: gets a provisional index, no count, so it maps to OOV.
        prov.push(f.add(Some("e"), false));
        let (v, fitted) = vocab_of_strs(f, 1);
        assert_eq!(
            v.keys(),
            &VocabKeys::Str(vec!["a".into(), "b".into(), "c".into(), "d".into()])
        );
        let ids: Vec<u32> = prov.iter().map(|&p| fitted.id(p)).collect();
        assert_eq!(ids, [2, 1, 3, 1, 2, 4, 1, OOV, OOV]);
        assert_eq!(v.id(Some(KeyRef::Str("a"))), 1);
        assert_eq!(v.id(Some(KeyRef::Str("zzz"))), OOV);
        assert_eq!(v.id(None), OOV);
        assert_eq!(v.size(), 5);

        let mut f = Fitter::default();
        for k in [5i64, 5, 7, 9, 9, 9] {
            f.add(Some(k), true);
        }
        let keys = f.finish(2, None).keys;
        let v: Vocab = VocabKeys::Int(keys.clone()).into();
        // The direct table agrees with the hash map.
        let mut r = RangeFitter::new(5, 9, 6).unwrap();
        for k in [5i64, 5, 7, 9, 9, 9] {
            r.add(Some(k), true);
        }
        assert_eq!(r.finish(2, None).keys, keys);
        assert!(RangeFitter::new(0, i64::MAX, 10).is_none());
        assert_eq!(v.keys(), &VocabKeys::Int(vec![9, 5]));
        assert_eq!(v.id(Some(KeyRef::Int(7))), OOV);
    }

    #[test]
    fn null_is_its_own_category_after_the_kept_values() {
        let mut f = Fitter::default();
        let mut prov = Vec::new();
        for k in [Some("a"), None, Some(""), None, Some("a")] {
            prov.push(f.add(k, true));
        }
        let (v, fitted) = vocab_of_strs(f, 2);
        // `a` twice, null twice: both kept; the empty string once: OOV with min_count 2.
        let ids: Vec<u32> = prov.iter().map(|&p| fitted.id(p)).collect();
        assert_eq!(ids, [1, 2, OOV, 2, 1]);
        assert_eq!(v.null_id(), Some(2));
        assert_eq!(v.id(None), 2);
        assert_eq!(v.id(Some(KeyRef::Str(""))), OOV);
        assert_eq!(v.size(), 3);
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(json, r#"{"str":["a"],"null":true}"#);
        let back: Vocab = serde_json::from_str(&json).unwrap();
        assert_eq!(back, v);
        assert_eq!(back.id(None), 2);
        // A vocabulary saved before null had an id reads as one without it.
        let old: Vocab = serde_json::from_str(r#"{"str":["a"]}"#).unwrap();
        assert_eq!(old.id(None), OOV);
    }

    #[test]
    fn serde_round_trip_rebuilds_lookup() {
        let v: Vocab = VocabKeys::Int(vec![3, 1]).into();
        let json = serde_json::to_string(&v).unwrap();
        let back: Vocab = serde_json::from_str(&json).unwrap();
        assert_eq!(back.id(Some(KeyRef::Int(1))), 2);
        assert_eq!(back, v);
    }

    #[test]
    fn max_size_keeps_the_first_of_the_ranking() {
        let values = ["b", "a", "c", "a", "b", "d", "a", "c", "e"];
        let mut f = Fitter::default();
        let prov: Vec<u32> = values.iter().map(|&k| f.add(Some(k), true)).collect();
        f.add(None, true);
        let fitted = f.finish(1, Some(2));
        // a 3, b 2, c 2 (c after b by value), d 1, e 1: a and b kept, the rest OOV.
        assert_eq!(fitted.keys, ["a", "b"]);
        let ids: Vec<u32> = prov.iter().map(|&p| fitted.id(p)).collect();
        assert_eq!(ids, [2, 1, OOV, 1, 2, OOV, 1, OOV, OOV]);
        // Null is not one of the max_size values: its id follows them.
        assert_eq!(fitted.id(NULL), 3);
        // With min_count too, and a bound larger than what is kept.
        let mut f = Fitter::default();
        values.iter().for_each(|&k| _ = f.add(Some(k), true));
        assert_eq!(f.finish(2, Some(10)).keys, ["a", "b", "c"]);
        let mut f = Fitter::default();
        values.iter().for_each(|&k| _ = f.add(Some(k), true));
        assert!(f.finish(1, Some(0)).keys.is_empty());
        // The direct table agrees.
        let mut r = RangeFitter::new(0, 9, 10).unwrap();
        for k in [3i64, 3, 3, 5, 5, 9, 1, 1] {
            r.add(Some(k), true);
        }
        assert_eq!(r.finish(1, Some(2)).keys, [3, 1]);
    }

    #[test]
    fn hashed_ids_take_text_and_integers_alike() {
        let v = Vocab::hashed(1000);
        assert!(v.is_hashed());
        assert_eq!(v.hash_buckets(), Some(1000));
        assert_eq!(v.size(), 1002);
        assert_eq!(v.null_id(), Some(1001));
        assert_eq!(v.id(None), 1001);
        assert_eq!(v.keys(), &VocabKeys::Str(vec![]));
        // Pinned ids (see `hashing.rs`): these never change.
        assert_eq!(v.id(Some(KeyRef::Str("a"))), 956);
        assert_eq!(v.id(Some(KeyRef::Str("Private"))), 157);
        assert_eq!(v.id(Some(KeyRef::Int(42))), 402);
        assert_eq!(v.id(Some(KeyRef::Int(-1))), 129);
        for i in [-5i64, 0, 7, 123456789, i64::MIN] {
            let text = i.to_string();
            let id = v.id(Some(KeyRef::Int(i)));
            assert_eq!(id, v.id(Some(KeyRef::Str(&text))));
            assert!((1..=1000).contains(&id));
        }
        // Either kind of column passes the kind check; a fitted vocabulary takes its own.
        assert!(v.accepts(KeyKind::Str) && v.accepts(KeyKind::Int));
        let fitted: Vocab = VocabKeys::Int(vec![1]).into();
        assert!(!fitted.is_hashed() && fitted.hash_buckets().is_none());
        assert!(fitted.accepts(KeyKind::Int) && !fitted.accepts(KeyKind::Str));
        // One bucket: every value shares id 1, null has 2.
        let one = Vocab::hashed(1);
        assert_eq!(one.id(Some(KeyRef::Str("x"))), 1);
        assert_eq!((one.id(None), one.size()), (2, 3));
    }

    #[test]
    #[should_panic(expected = "hash_buckets = 0")]
    fn hashed_refuses_zero_buckets() {
        Vocab::hashed(0);
    }

    #[test]
    fn hashed_serialises_as_its_buckets_and_old_json_still_reads() {
        let v = Vocab::hashed(1 << 20);
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(json, r#"{"hash_buckets":1048576}"#);
        let back: Vocab = serde_json::from_str(&json).unwrap();
        assert_eq!(back, v);
        assert_eq!(back.id(Some(KeyRef::Int(42))), v.id(Some(KeyRef::Int(42))));
        assert_ne!(back, Vocab::hashed(1 << 19));
        // The fitted forms read and write as before.
        for json in [
            r#"{"str":["a","b"]}"#,
            r#"{"int":[3,1],"null":true}"#,
            r#"{"str":[]}"#,
        ] {
            let v: Vocab = serde_json::from_str(json).unwrap();
            assert!(!v.is_hashed());
            assert_eq!(serde_json::to_string(&v).unwrap(), json);
        }
        let old: Vocab = serde_json::from_str(r#"{"int":[3,1],"null":true}"#).unwrap();
        assert_eq!((old.id(Some(KeyRef::Int(1))), old.id(None)), (2, 3));
        // Malformed: none, two forms, null beside buckets, buckets out of range.
        for bad in [
            r#"{}"#,
            r#"{"str":["a"],"int":[1]}"#,
            r#"{"str":["a"],"hash_buckets":8}"#,
            r#"{"hash_buckets":8,"null":true}"#,
            r#"{"hash_buckets":0}"#,
            r#"{"hash_buckets":2000000000}"#,
        ] {
            assert!(serde_json::from_str::<Vocab>(bad).is_err(), "{bad}");
        }
        let err = serde_json::from_str::<Vocab>(r#"{"hash_buckets":0}"#).unwrap_err();
        assert!(err.to_string().contains("must be in 1..="), "{err}");
    }
}
