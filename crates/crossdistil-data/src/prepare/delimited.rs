//! Streaming parser for CSV and TSV files into typed columns, with errors naming the file, the
//! column and the 1-based data row.

use std::path::Path;

use crate::error::{DataError, Result, echo, unique_position};
use crate::table::ColumnData;

/// How one field of a record is parsed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Parse {
    /// A categorical value: integers while every value is one, text from the first that is not.
    Cat,
    /// A categorical value kept as text.
    Text,
    /// A finite number.
    Float,
    /// `0`/`1`/`true`/`false` (any case); `0.0` and `1.0` too.
    Label,
    /// A number turned into a label: `1` when the value is `>= threshold`.
    Threshold(f64),
    /// A list of values separated by this string; empty items are dropped.
    List(String),
}

/// A field of the input and the column it becomes.
#[derive(Debug, Clone)]
pub(crate) struct Field {
    /// The header name, or `#N` (0-based) for a file without a header.
    pub source: String,
    /// The output column name.
    pub name: String,
    pub parse: Parse,
}

impl Field {
    pub(crate) fn new(source: impl Into<String>, name: impl Into<String>, parse: Parse) -> Self {
        Field {
            source: source.into(),
            name: name.into(),
            parse,
        }
    }

    /// A field named the same in the input and the output.
    pub(crate) fn same(name: &str, parse: Parse) -> Self {
        Field::new(name, name, parse)
    }
}

/// How the file is laid out.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Layout {
    pub delimiter: u8,
    pub header: bool,
    /// Whether `"` quotes fields (CSV) or is an ordinary character (MovieLens titles).
    pub quoting: bool,
}

impl Layout {
    pub(crate) fn csv() -> Self {
        Layout {
            delimiter: b',',
            header: true,
            quoting: true,
        }
    }

    pub(crate) fn tsv(header: bool) -> Self {
        Layout {
            delimiter: b'\t',
            header,
            quoting: true,
        }
    }
}

enum Acc {
    CatInt(Vec<i64>),
    CatStr(Vec<String>),
    Text(Vec<String>),
    Float(Vec<f32>),
    Label(Vec<u8>),
    List(Vec<Vec<String>>),
}

impl Acc {
    fn new(p: &Parse) -> Acc {
        match p {
            Parse::Cat => Acc::CatInt(Vec::new()),
            Parse::Text => Acc::Text(Vec::new()),
            Parse::Float => Acc::Float(Vec::new()),
            Parse::Label | Parse::Threshold(_) => Acc::Label(Vec::new()),
            Parse::List(_) => Acc::List(Vec::new()),
        }
    }

    fn push(&mut self, cell: &str, parse: &Parse) -> std::result::Result<(), String> {
        if let Acc::CatInt(v) = self {
            match cell.parse::<i64>() {
                Ok(x) => v.push(x),
                Err(_) => {
                    let mut s: Vec<String> = v.iter().map(|x| x.to_string()).collect();
                    s.push(cell.to_string());
                    *self = Acc::CatStr(s);
                }
            }
            return Ok(());
        }
        match (self, parse) {
            (Acc::CatInt(_), _) => unreachable!("handled above"),
            (Acc::CatStr(v) | Acc::Text(v), _) => v.push(cell.to_string()),
            (Acc::Float(v), _) => v.push(parse_f32(cell)?),
            (Acc::Label(v), Parse::Threshold(t)) => v.push(u8::from(parse_number(cell)? >= *t)),
            (Acc::Label(v), _) => {
                v.push(parse_label(cell).ok_or_else(|| {
                    format!("label `{}` is not 0 or 1 (or true/false)", echo(cell))
                })?)
            }
            (Acc::List(v), Parse::List(sep)) => v.push(
                cell.split(sep.as_str())
                    .map(str::trim)
                    .filter(|x| !x.is_empty())
                    .map(String::from)
                    .collect(),
            ),
            (Acc::List(_), _) => unreachable!("a list accumulator is only made for Parse::List"),
        }
        Ok(())
    }

    fn finish(self) -> ColumnData {
        match self {
            Acc::CatInt(v) => ColumnData::Int(v),
            Acc::CatStr(v) | Acc::Text(v) => ColumnData::Str(v),
            Acc::Float(v) => ColumnData::Float(v),
            Acc::Label(v) => ColumnData::Label(v),
            Acc::List(v) => ColumnData::List(v),
        }
    }
}

/// Parses a label cell.
pub(crate) fn parse_label(s: &str) -> Option<u8> {
    match s.trim() {
        "0" | "0.0" => Some(0),
        "1" | "1.0" => Some(1),
        t if t.eq_ignore_ascii_case("false") => Some(0),
        t if t.eq_ignore_ascii_case("true") => Some(1),
        _ => None,
    }
}

/// Parses a finite number, or says why not.
pub(crate) fn parse_number(s: &str) -> std::result::Result<f64, String> {
    let t = s.trim();
    match t.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(v) => Err(format!("value `{}` is {v}, not a finite number", echo(t))),
        Err(_) if t.is_empty() => Err("value is empty, expected a number".to_string()),
        Err(_) => Err(format!("value `{}` is not a number", echo(t))),
    }
}

/// Parses a number that is finite as an f32 (the type the canonical layout stores dense values
/// as), or says why not: `1e39` is finite in f64 but would become infinity.
pub(crate) fn parse_f32(s: &str) -> std::result::Result<f32, String> {
    let v = parse_number(s)?;
    let x = v as f32;
    if !x.is_finite() {
        return Err(format!(
            "value `{}` is outside the range of a 32-bit float (at most {:e} in magnitude)",
            echo(s.trim()),
            f32::MAX
        ));
    }
    Ok(x)
}

/// The names in the header of a delimited file, trimmed.
pub(crate) fn header_names(path: &Path, layout: Layout) -> Result<Vec<String>> {
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, "cannot open", e))?;
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(layout.delimiter)
        .has_headers(true)
        .quoting(layout.quoting)
        .from_reader(std::io::BufReader::new(file));
    let headers = rdr
        .byte_headers()
        .map_err(|e| DataError::file(path, format!("cannot read the header: {e}")))?;
    Ok(headers
        .iter()
        .map(|h| String::from_utf8_lossy(h).trim().to_string())
        .collect())
}

/// Reads `fields` from every record of a delimited file.
pub(crate) fn read(
    path: &Path,
    layout: Layout,
    fields: &[Field],
) -> Result<Vec<(String, ColumnData)>> {
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, "cannot open", e))?;
    read_from(
        path,
        std::io::BufReader::with_capacity(1 << 20, file),
        layout,
        fields,
    )
}

/// As [`read`], from any reader. The fields read must be UTF-8 (a byte sequence that is not is
/// an error naming the cell: replacing it would merge distinct values); other fields are not
/// looked at. A field named twice in the header is an error.
pub(crate) fn read_from(
    path: &Path,
    input: impl std::io::Read,
    layout: Layout,
    fields: &[Field],
) -> Result<Vec<(String, ColumnData)>> {
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(layout.delimiter)
        .has_headers(layout.header)
        .flexible(false)
        .quoting(layout.quoting)
        .from_reader(input);
    let index: Vec<usize> = if layout.header {
        let headers = rdr
            .byte_headers()
            .map_err(|e| DataError::file(path, format!("cannot read the header: {e}")))?
            .clone();
        let names: Vec<String> = headers
            .iter()
            .map(|h| String::from_utf8_lossy(h).trim().to_string())
            .collect();
        fields
            .iter()
            .map(|f| header_position(path, &names, &f.source))
            .collect::<Result<_>>()?
    } else {
        fields
            .iter()
            .map(|f| {
                f.source
                    .strip_prefix('#')
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(|| {
                        DataError::column(
                            path,
                            &f.source,
                            "a file without a header names fields as #N",
                        )
                    })
            })
            .collect::<Result<_>>()?
    };
    let mut accs: Vec<Acc> = fields.iter().map(|f| Acc::new(&f.parse)).collect();
    let mut record = csv::ByteRecord::new();
    let mut row = 0usize;
    loop {
        match rdr.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let at = e.position().map(|p| p.line()).unwrap_or(0);
                return Err(DataError::file(
                    path,
                    format!("malformed record near line {at}: {e}"),
                ));
            }
        }
        row += 1;
        for ((f, &i), acc) in fields.iter().zip(&index).zip(accs.iter_mut()) {
            let raw = record.get(i).ok_or_else(|| {
                DataError::cell(
                    path,
                    &f.source,
                    row,
                    format!("the record has {} fields", record.len()),
                )
            })?;
            let cell = std::str::from_utf8(raw).map_err(|e| {
                DataError::cell(
                    path,
                    &f.source,
                    row,
                    format!(
                        "is not valid UTF-8 (at byte {} of `{}`)",
                        e.valid_up_to() + 1,
                        echo(&String::from_utf8_lossy(raw))
                    ),
                )
            })?;
            acc.push(cell.trim(), &f.parse)
                .map_err(|m| DataError::cell(path, &f.source, row, m))?;
        }
    }
    tracing::debug!(rows = row, "read {}", path.display());
    Ok(fields
        .iter()
        .map(|f| f.name.clone())
        .zip(accs.into_iter().map(Acc::finish))
        .collect())
}

/// The index of the header field `name`: an error naming it when it is missing, or present more
/// than once (which one is meant would be ambiguous).
fn header_position(path: &Path, names: &[String], name: &str) -> Result<usize> {
    unique_position(path, names.iter().map(String::as_str), name, "the header")?.ok_or_else(|| {
        DataError::column(
            path,
            name,
            format!("missing from the header ({} columns)", names.len()),
        )
    })
}
