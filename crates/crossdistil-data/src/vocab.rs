//! Vocabularies: categorical values to dense u32 ids, fitted on the train split.
//!
//! Id 0 is the out-of-vocabulary id: values unseen in train and values seen fewer than
//! `min_count` times in train. Ids `1..=len` go to the kept values in order of decreasing train
//! count, ties broken by the value itself, so a fit is deterministic.
//!
//! Null is a category of its own, distinct from the empty string and from every value: when the
//! train split holds at least `min_count` nulls, the vocabulary reserves the id after the kept
//! values for it (`len + 1`); otherwise nulls map to the OOV id, as rare values do.

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::column::{KeyKind, KeyRef};

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

/// A fitted vocabulary. Serialises as its keys (`{"str": [...]}` or `{"int": [...]}`) and
/// `"null": true` when null has an id; the lookup table is rebuilt on load.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(from = "VocabRepr", into = "VocabRepr")]
pub struct Vocab {
    keys: VocabKeys,
    /// The id of null, when the train split had enough nulls to keep it.
    null_id: Option<u32>,
    str_ids: FxHashMap<String, u32>,
    int_ids: FxHashMap<i64, u32>,
}

/// The serialised form of a [`Vocab`].
#[derive(Serialize, Deserialize)]
struct VocabRepr {
    #[serde(flatten)]
    keys: VocabKeys,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    null: bool,
}

impl From<VocabRepr> for Vocab {
    fn from(r: VocabRepr) -> Self {
        Vocab::new(r.keys, r.null)
    }
}

impl From<Vocab> for VocabRepr {
    fn from(v: Vocab) -> Self {
        VocabRepr {
            null: v.null_id.is_some(),
            keys: v.keys,
        }
    }
}

impl PartialEq for Vocab {
    fn eq(&self, other: &Self) -> bool {
        self.keys == other.keys && self.null_id == other.null_id
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

    pub(crate) fn finish(self, min_count: u32) -> Fitted<i64> {
        self.inner.finish(min_count)
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
    /// count then value, and null when it was counted as often.
    pub(crate) fn finish(self, min_count: u32) -> Fitted<K> {
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
    /// rows.
    pub fn size(&self) -> usize {
        1 + usize::from(self.null_id.is_some())
            + match &self.keys {
                VocabKeys::Str(v) => v.len(),
                VocabKeys::Int(v) => v.len(),
            }
    }

    /// The id of null, when it has one.
    pub fn null_id(&self) -> Option<u32> {
        self.null_id
    }

    pub(crate) fn kind(&self) -> KeyKind {
        match self.keys {
            VocabKeys::Str(_) => KeyKind::Str,
            VocabKeys::Int(_) => KeyKind::Int,
        }
    }

    /// The kept values, in id order.
    pub fn keys(&self) -> &VocabKeys {
        &self.keys
    }

    /// The id of a value; `OOV` for unknown values, and for nulls when null has no id.
    #[inline]
    pub(crate) fn id(&self, key: Option<KeyRef<'_>>) -> u32 {
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
        let fitted = f.finish(min_count);
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
        let keys = f.finish(2).keys;
        let v: Vocab = VocabKeys::Int(keys.clone()).into();
        // The direct table agrees with the hash map.
        let mut r = RangeFitter::new(5, 9, 6).unwrap();
        for k in [5i64, 5, 7, 9, 9, 9] {
            r.add(Some(k), true);
        }
        assert_eq!(r.finish(2).keys, keys);
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
}
