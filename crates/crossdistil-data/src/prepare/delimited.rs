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
    /// The accumulator of a field; `text`: a categorical field is text from the first row.
    fn new(p: &Parse, text: bool) -> Acc {
        match p {
            Parse::Cat if text => Acc::CatStr(Vec::new()),
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
    let mut out = Vec::new();
    read_chunks(path, layout, fields, None, usize::MAX, &mut |c| {
        out = c;
        Ok(())
    })?;
    Ok(out)
}

/// What a counting pass over delimited files found: enough to stream them with one schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Scan {
    /// The number of data rows.
    pub rows: u64,
    /// Per field: whether a categorical field ([`Parse::Cat`]) holds a value that is not an
    /// integer, so that it is text in every chunk (`false` for the other fields).
    pub text: Vec<bool>,
}

/// The counting pass of a streamed source: the rows of every file of `paths` and which
/// categorical fields are text, in O(fields) memory. Malformed records and missing header fields
/// are refused here, as the reading pass would; the values themselves are checked by the
/// reading pass.
pub(crate) fn scan(paths: &[impl AsRef<Path>], layout: Layout, fields: &[Field]) -> Result<Scan> {
    let mut scan = Scan {
        rows: 0,
        text: vec![false; fields.len()],
    };
    for path in paths {
        let path = path.as_ref();
        let (mut rdr, index) = open(path, layout, fields)?;
        let mut record = csv::ByteRecord::new();
        while next_record(path, &mut rdr, &mut record)? {
            scan.rows += 1;
            for ((f, &i), text) in fields.iter().zip(&index).zip(scan.text.iter_mut()) {
                if *text || f.parse != Parse::Cat {
                    continue;
                }
                let int = record
                    .get(i)
                    .and_then(|raw| std::str::from_utf8(raw).ok())
                    .is_some_and(|c| c.trim().parse::<i64>().is_ok());
                *text = !int;
            }
        }
    }
    Ok(scan)
}

/// Reads `fields` from every record of a delimited file in chunks of at most `chunk_rows` rows,
/// calling `each` on every chunk in file order (once, with no rows, for a file without records).
/// `text`, from [`scan`]: per field, whether a categorical field is text from its first row;
/// `None` decides per file (integers while every value is one). The fields read must be UTF-8
/// (a byte sequence that is not is an error naming the cell: replacing it would merge distinct
/// values); other fields are not looked at. A field named twice in the header is an error. Rows
/// in errors count from the start of the file, whatever the chunk.
pub(crate) fn read_chunks(
    path: &Path,
    layout: Layout,
    fields: &[Field],
    text: Option<&[bool]>,
    chunk_rows: usize,
    each: &mut dyn FnMut(Vec<(String, ColumnData)>) -> Result<()>,
) -> Result<()> {
    let (mut rdr, index) = open(path, layout, fields)?;
    let new_accs = || -> Vec<Acc> {
        fields
            .iter()
            .enumerate()
            .map(|(k, f)| Acc::new(&f.parse, text.is_some_and(|t| t[k])))
            .collect()
    };
    let finish = |accs: Vec<Acc>| -> Vec<(String, ColumnData)> {
        fields
            .iter()
            .map(|f| f.name.clone())
            .zip(accs.into_iter().map(Acc::finish))
            .collect()
    };
    let mut accs = new_accs();
    let mut record = csv::ByteRecord::new();
    let mut row = 0usize;
    let mut in_chunk = 0usize;
    while next_record(path, &mut rdr, &mut record)? {
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
        in_chunk += 1;
        if in_chunk == chunk_rows {
            each(finish(std::mem::replace(&mut accs, new_accs())))?;
            in_chunk = 0;
        }
    }
    tracing::debug!(rows = row, "read {}", path.display());
    if in_chunk > 0 || row == 0 {
        each(finish(accs))?;
    }
    Ok(())
}

/// The file's reader, with the record index of every field.
fn open(
    path: &Path,
    layout: Layout,
    fields: &[Field],
) -> Result<(csv::Reader<std::io::BufReader<std::fs::File>>, Vec<usize>)> {
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, "cannot open", e))?;
    reader(
        path,
        std::io::BufReader::with_capacity(1 << 20, file),
        layout,
        fields,
    )
}

/// A CSV reader of `input`, with the record index of every field: from the header (a field
/// missing from it, or named in it twice, is an error naming it), or from the `#N` names of a
/// file without one.
fn reader<R: std::io::Read>(
    path: &Path,
    input: R,
    layout: Layout,
    fields: &[Field],
) -> Result<(csv::Reader<R>, Vec<usize>)> {
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
    Ok((rdr, index))
}

/// Reads the next record into `record`; `false` at the end. A malformed record is an error
/// naming the file and the line.
fn next_record<R: std::io::Read>(
    path: &Path,
    rdr: &mut csv::Reader<R>,
    record: &mut csv::ByteRecord,
) -> Result<bool> {
    rdr.read_byte_record(record).map_err(|e| {
        let at = e.position().map(|p| p.line()).unwrap_or(0);
        DataError::file(path, format!("malformed record near line {at}: {e}"))
    })
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
