//! Typed access to one column of a Parquet file read as Arrow chunks, with errors that name the
//! file, the column and the 1-based row.

use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use arrow_array::{Array, Int64Array, LargeStringArray, StringArray};
use arrow_schema::DataType;

use crate::error::{DataError, Result};

/// One column as the Arrow arrays of consecutive record batches.
pub(crate) struct Chunks<'a> {
    pub file: &'a Path,
    /// The 0-based row of the file where these chunks start (errors name the file's row).
    pub first_row: usize,
    pub name: &'a str,
    pub arrays: Vec<&'a dyn Array>,
}

/// A categorical value, borrowed from the column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum KeyRef<'a> {
    Str(&'a str),
    Int(i64),
}

/// Whether a categorical column holds text or integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyKind {
    Str,
    Int,
}

impl<'a> Chunks<'a> {
    pub(crate) fn len(&self) -> usize {
        self.arrays.iter().map(|a| a.len()).sum()
    }

    /// The number of null values (for a list column, of null lists).
    pub(crate) fn null_count(&self) -> usize {
        self.arrays.iter().map(|a| a.null_count()).sum()
    }

    /// The number of null items inside the lists of a list column.
    pub(crate) fn list_item_nulls(&self) -> Result<usize> {
        let mut nulls = 0;
        self.for_each_list(|_, keys, range| {
            nulls += range.filter(|&j| keys.get(j).is_none()).count();
        })?;
        Ok(nulls)
    }

    fn data_type(&self) -> Option<&DataType> {
        self.arrays.first().map(|a| a.data_type())
    }

    fn type_error(&self, wanted: &str) -> DataError {
        let got = self
            .data_type()
            .map_or("nothing".to_string(), |t| t.to_string());
        DataError::column(
            self.file,
            self.name,
            format!("has type {got}, expected {wanted}"),
        )
    }

    fn cell_error(&self, row0: usize, message: impl Into<String>) -> DataError {
        DataError::cell(self.file, self.name, self.first_row + row0 + 1, message)
    }

    /// Calls `f(row, value)` for every row, `row` 0-based, with every numeric type read as f64.
    /// Nulls are an error.
    pub(crate) fn for_each_f64(&self, mut f: impl FnMut(usize, f64) -> Result<()>) -> Result<()> {
        let mut base = 0;
        for &a in &self.arrays {
            if let Some(i) = first_null(a) {
                return Err(self.cell_error(base + i, "value is missing (null)"));
            }
            macro_rules! each {
                ($t:ty) => {
                    for (i, v) in a.as_primitive::<$t>().values().iter().enumerate() {
                        f(base + i, *v as f64)?;
                    }
                };
            }
            match a.data_type() {
                DataType::Float32 => each!(Float32Type),
                DataType::Float64 => each!(Float64Type),
                DataType::Int8 => each!(Int8Type),
                DataType::Int16 => each!(Int16Type),
                DataType::Int32 => each!(Int32Type),
                DataType::Int64 => each!(Int64Type),
                DataType::UInt8 => each!(UInt8Type),
                DataType::UInt16 => each!(UInt16Type),
                DataType::UInt32 => each!(UInt32Type),
                DataType::UInt64 => each!(UInt64Type),
                DataType::Boolean => {
                    for (i, v) in a.as_boolean().values().iter().enumerate() {
                        f(base + i, if v { 1.0 } else { 0.0 })?;
                    }
                }
                _ => return Err(self.type_error("a number")),
            }
            base += a.len();
        }
        Ok(())
    }

    /// A dense feature: every value a number that is finite as an f32.
    pub(crate) fn dense(&self) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(self.len());
        self.for_each_f64(|row, v| {
            if !v.is_finite() {
                return Err(self.cell_error(row, format!("value {v} is not a finite number")));
            }
            let x = v as f32;
            if !x.is_finite() {
                return Err(self.cell_error(
                    row,
                    format!("value {v:e} is outside the range of a 32-bit float"),
                ));
            }
            out.push(x);
            Ok(())
        })?;
        Ok(out)
    }

    /// Sample weights: every value finite, non-negative and within the range of a 32-bit float.
    pub(crate) fn weights(&self) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(self.len());
        if matches!(self.data_type(), Some(DataType::Utf8 | DataType::LargeUtf8)) {
            return Err(self.type_error("a number (a sample weight)"));
        }
        self.for_each_f64(|row, v| {
            let w = v as f32;
            if !v.is_finite() || !w.is_finite() || v < 0.0 {
                return Err(self.cell_error(
                    row,
                    format!("sample weight {v} is not a finite number of at least 0"),
                ));
            }
            out.push(w);
            Ok(())
        })?;
        Ok(out)
    }

    /// A binary label: every value 0 or 1 (or false/true).
    pub(crate) fn labels(&self) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(self.len());
        if matches!(self.data_type(), Some(DataType::Utf8 | DataType::LargeUtf8)) {
            return Err(self.type_error("0/1 or a boolean"));
        }
        self.for_each_f64(|row, v| {
            let y = if v == 0.0 {
                0
            } else if v == 1.0 {
                1
            } else {
                return Err(self.cell_error(row, format!("label {v} is not 0 or 1")));
            };
            out.push(y);
            Ok(())
        })?;
        Ok(out)
    }

    /// Row ids: non-negative integers.
    pub(crate) fn row_ids(&self) -> Result<Vec<u64>> {
        let mut out = Vec::with_capacity(self.len());
        let is_int = matches!(
            self.data_type(),
            Some(
                DataType::Int8
                    | DataType::Int16
                    | DataType::Int32
                    | DataType::Int64
                    | DataType::UInt8
                    | DataType::UInt16
                    | DataType::UInt32
                    | DataType::UInt64
            )
        );
        if !is_int {
            return Err(self.type_error("an integer row id"));
        }
        for &a in &self.arrays {
            if let Some(i) = first_null(a) {
                return Err(self.cell_error(out.len() + i, "row id is missing (null)"));
            }
            if let DataType::UInt64 = a.data_type() {
                out.extend_from_slice(a.as_primitive::<UInt64Type>().values());
                continue;
            }
            let base = out.len();
            let cast = arrow_cast_i64(a);
            for (i, v) in cast.into_iter().enumerate() {
                if v < 0 {
                    return Err(self.cell_error(base + i, format!("row id {v} is negative")));
                }
                out.push(v as u64);
            }
        }
        Ok(out)
    }

    /// Calls `f(row, key)` for every row of a categorical column (text or integers); a null
    /// gives `None`, which the vocabulary maps to the out-of-vocabulary id.
    pub(crate) fn for_each_key(&self, mut f: impl FnMut(usize, Option<KeyRef<'a>>)) -> Result<()> {
        let mut base = 0;
        for &a in &self.arrays {
            let keys = KeyArray::new(a).ok_or_else(|| self.type_error("text or integers"))?;
            for i in 0..a.len() {
                f(base + i, keys.get(i));
            }
            base += a.len();
        }
        Ok(())
    }

    /// Calls `f(row, value)` for every row of an integer column; a null gives `None`.
    pub(crate) fn for_each_int(&self, mut f: impl FnMut(usize, Option<i64>)) -> Result<()> {
        let mut base = 0;
        for &a in &self.arrays {
            let widened;
            let values: &[i64] = match a.data_type() {
                DataType::Int64 => a.as_primitive::<Int64Type>().values(),
                t if t.is_integer() => {
                    widened = arrow_cast_i64(a);
                    &widened
                }
                _ => return Err(self.type_error("integers")),
            };
            if a.null_count() == 0 {
                for (i, &v) in values.iter().enumerate() {
                    f(base + i, Some(v));
                }
            } else {
                for (i, &v) in values.iter().enumerate() {
                    f(base + i, a.is_valid(i).then_some(v));
                }
            }
            base += a.len();
        }
        Ok(())
    }

    /// Calls `f(row, keys, range)` for every row of a list column (`List` or `LargeList` of text
    /// or integers): the row's values are `keys.get(i)` for `i` in `range`. A null list is empty.
    pub(crate) fn for_each_list(
        &self,
        mut f: impl FnMut(usize, &KeyArray<'a>, std::ops::Range<usize>),
    ) -> Result<()> {
        let mut base = 0;
        for &a in &self.arrays {
            let (values, offsets): (&'a dyn Array, Vec<usize>) = match a.data_type() {
                DataType::List(_) => {
                    let l = a.as_list::<i32>();
                    (
                        l.values().as_ref(),
                        l.value_offsets().iter().map(|&o| o as usize).collect(),
                    )
                }
                DataType::LargeList(_) => {
                    let l = a.as_list::<i64>();
                    (
                        l.values().as_ref(),
                        l.value_offsets().iter().map(|&o| o as usize).collect(),
                    )
                }
                _ => return Err(self.type_error("a list of text or integers")),
            };
            let keys = KeyArray::new(values)
                .ok_or_else(|| self.type_error("a list of text or integers"))?;
            for i in 0..a.len() {
                let range = if a.is_null(i) {
                    0..0
                } else {
                    offsets[i]..offsets[i + 1]
                };
                f(base + i, &keys, range);
            }
            base += a.len();
        }
        Ok(())
    }

    /// Every value of a text column; nulls are an error.
    pub(crate) fn strings(&self) -> Result<Vec<&'a str>> {
        let mut out = Vec::with_capacity(self.len());
        for &a in &self.arrays {
            if let Some(i) = first_null(a) {
                return Err(self.cell_error(out.len() + i, "value is missing (null)"));
            }
            match a.data_type() {
                DataType::Utf8 => {
                    out.extend(a.as_string::<i32>().iter().map(Option::unwrap_or_default))
                }
                DataType::LargeUtf8 => {
                    out.extend(a.as_string::<i64>().iter().map(Option::unwrap_or_default))
                }
                _ => return Err(self.type_error("text")),
            }
        }
        Ok(out)
    }

    /// The kind of a categorical column, or an error naming its type.
    pub(crate) fn key_kind(&self) -> Result<KeyKind> {
        match self.data_type() {
            Some(DataType::Utf8 | DataType::LargeUtf8) => Ok(KeyKind::Str),
            Some(t) if t.is_integer() => Ok(KeyKind::Int),
            None => Ok(KeyKind::Str),
            _ => Err(self.type_error("text or integers (a categorical feature)")),
        }
    }
}

fn first_null(a: &dyn Array) -> Option<usize> {
    if a.null_count() == 0 {
        return None;
    }
    (0..a.len()).find(|&i| a.is_null(i))
}

/// Integer arrays of any width as i64 (u64 above i64::MAX wraps, which keeps keys distinct).
pub(crate) fn arrow_cast_i64(a: &dyn Array) -> Vec<i64> {
    macro_rules! cast {
        ($t:ty) => {
            a.as_primitive::<$t>()
                .values()
                .iter()
                .map(|&v| v as i64)
                .collect()
        };
    }
    match a.data_type() {
        DataType::Int8 => cast!(Int8Type),
        DataType::Int16 => cast!(Int16Type),
        DataType::Int32 => cast!(Int32Type),
        DataType::Int64 => a.as_primitive::<Int64Type>().values().to_vec(),
        DataType::UInt8 => cast!(UInt8Type),
        DataType::UInt16 => cast!(UInt16Type),
        DataType::UInt32 => cast!(UInt32Type),
        DataType::UInt64 => cast!(UInt64Type),
        _ => Vec::new(),
    }
}

/// The values of one Arrow array read as categorical keys.
pub(crate) enum KeyArray<'a> {
    Str(&'a StringArray),
    LargeStr(&'a LargeStringArray),
    Int64(&'a Int64Array),
    /// Narrower or unsigned integers, widened once.
    Int(Vec<i64>, &'a dyn Array),
}

impl<'a> KeyArray<'a> {
    pub(crate) fn new(a: &'a dyn Array) -> Option<Self> {
        Some(match a.data_type() {
            DataType::Utf8 => KeyArray::Str(a.as_string::<i32>()),
            DataType::LargeUtf8 => KeyArray::LargeStr(a.as_string::<i64>()),
            DataType::Int64 => KeyArray::Int64(a.as_primitive::<Int64Type>()),
            t if t.is_integer() => KeyArray::Int(arrow_cast_i64(a), a),
            _ => return None,
        })
    }

    /// The key at `i`, `None` when null.
    #[inline]
    pub(crate) fn get(&self, i: usize) -> Option<KeyRef<'a>> {
        match self {
            KeyArray::Str(a) => a.is_valid(i).then(|| KeyRef::Str(a.value(i))),
            KeyArray::LargeStr(a) => a.is_valid(i).then(|| KeyRef::Str(a.value(i))),
            KeyArray::Int64(a) => a.is_valid(i).then(|| KeyRef::Int(a.value(i))),
            KeyArray::Int(v, a) => a.is_valid(i).then(|| KeyRef::Int(v[i])),
        }
    }
}
