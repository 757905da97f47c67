//! MovieLens-100K: 100,000 ratings of 1,682 movies by 943 users, with user age, gender,
//! occupation and zip code and movie release year and genres. Two layouts are read: RecBole's
//! atomic files (`ml-100k.inter`, `ml-100k.user`, `ml-100k.item`) and GroupLens's (`u.data`,
//! `u.user`, `u.item`). Tasks, in priority order: `like` (rating >= 4), `above_mean` (rating
//! above the user's mean rating over the train split), `love` (rating == 5, nested in like).

use std::path::{Path, PathBuf};

use rustc_hash::FxHashMap;

use super::delimited::{self, Field, Layout, Parse};
use super::{PrepareOptions, Prepared, add_row_id_and_split, write};
use crate::error::{DataError, Result};
use crate::spec::{DatasetSpec, LabelSpec, MultiSpec, SparseSpec};
use crate::split::Split;
use crate::table::{ColumnData, Table};

/// The GroupLens genre flags of `u.item`, in column order.
pub const GENRES: [&str; 19] = [
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
];

/// The `dataset.toml` this source writes: the inputs and the three tasks.
pub fn spec() -> DatasetSpec {
    let sparse = [
        "user_id",
        "item_id",
        "age",
        "gender",
        "occupation",
        "zip3",
        "release_year",
    ];
    DatasetSpec {
        name: "movielens-100k".into(),
        source: "movielens-100k".into(),
        data: crate::spec::DATA_FILE.into(),
        row_id: "row_id".into(),
        split: "split".into(),
        user: Some("user_id".into()),
        labels: vec![
            LabelSpec {
                name: "like".into(),
                description: "rating >= 4".into(),
            },
            LabelSpec {
                name: "above_mean".into(),
                description: "rating > the user's mean rating over the train split".into(),
            },
            LabelSpec {
                name: "love".into(),
                description: "rating == 5".into(),
            },
        ],
        sparse: sparse
            .iter()
            .map(|n| SparseSpec {
                name: n.to_string(),
                min_count: 1,
                max_size: None,
                hash_buckets: None,
            })
            .collect(),
        multi: vec![MultiSpec {
            name: "genres".into(),
            min_count: 1,
            max_size: None,
            hash_buckets: None,
        }],
        dense: vec![],
        extra: vec![],
        weight: None,
        footer_crc32: None,
        parts: vec![],
    }
}

struct Ratings {
    file: PathBuf,
    users: Vec<i64>,
    items: Vec<i64>,
    ratings: Vec<f32>,
}

struct User {
    age: i64,
    gender: String,
    occupation: String,
    zip: String,
}

/// Ratings, users by id, items by id.
type Tables = (Ratings, FxHashMap<i64, User>, FxHashMap<i64, Item>);

struct Item {
    year: String,
    genres: Vec<String>,
}

fn ints(c: ColumnData, file: &Path, name: &str) -> Result<Vec<i64>> {
    match c {
        ColumnData::Int(v) => Ok(v),
        _ => Err(DataError::column(
            file,
            name,
            "holds values that are not integers",
        )),
    }
}

fn strs(c: ColumnData) -> Vec<String> {
    match c {
        ColumnData::Str(v) => v,
        ColumnData::Int(v) => v.iter().map(i64::to_string).collect(),
        _ => Vec::new(),
    }
}

fn floats(c: ColumnData) -> Vec<f32> {
    match c {
        ColumnData::Float(v) => v,
        _ => Vec::new(),
    }
}

fn lists(c: ColumnData) -> Vec<Vec<String>> {
    match c {
        ColumnData::List(v) => v,
        _ => Vec::new(),
    }
}

/// The ratings file: `sources` name the user, item and rating fields.
fn read_ratings(file: PathBuf, layout: Layout, sources: [&str; 3]) -> Result<Ratings> {
    let fields = [
        Field::new(sources[0], "user", Parse::Cat),
        Field::new(sources[1], "item", Parse::Cat),
        Field::new(sources[2], "rating", Parse::Float),
    ];
    let mut c = delimited::read(&file, layout, &fields)?
        .into_iter()
        .map(|(_, c)| c);
    let users = ints(c.next().unwrap(), &file, sources[0])?;
    let items = ints(c.next().unwrap(), &file, sources[1])?;
    let ratings = floats(c.next().unwrap());
    Ok(Ratings {
        file,
        users,
        items,
        ratings,
    })
}

/// The users file: `sources` name the id, age, gender, occupation and zip code fields.
fn read_users(file: &Path, layout: Layout, sources: [&str; 5]) -> Result<FxHashMap<i64, User>> {
    let fields = [
        Field::new(sources[0], "id", Parse::Cat),
        Field::new(sources[1], "age", Parse::Cat),
        Field::new(sources[2], "gender", Parse::Text),
        Field::new(sources[3], "occupation", Parse::Text),
        Field::new(sources[4], "zip", Parse::Text),
    ];
    let mut c = delimited::read(file, layout, &fields)?
        .into_iter()
        .map(|(_, c)| c);
    let ids = ints(c.next().unwrap(), file, sources[0])?;
    let ages = ints(c.next().unwrap(), file, sources[1])?;
    let (genders, occupations, zips) = (
        strs(c.next().unwrap()),
        strs(c.next().unwrap()),
        strs(c.next().unwrap()),
    );
    Ok(ids
        .into_iter()
        .zip(ages)
        .zip(genders.into_iter().zip(occupations).zip(zips))
        .map(|((id, age), ((gender, occupation), zip))| {
            (
                id,
                User {
                    age,
                    gender,
                    occupation,
                    zip,
                },
            )
        })
        .collect())
}

fn read_recbole(dir: &Path) -> Result<Tables> {
    let layout = Layout {
        delimiter: b'\t',
        header: true,
        quoting: false,
    };
    let ratings = read_ratings(
        dir.join("ml-100k.inter"),
        layout,
        ["user_id:token", "item_id:token", "rating:float"],
    )?;
    let users = read_users(
        &dir.join("ml-100k.user"),
        layout,
        [
            "user_id:token",
            "age:token",
            "gender:token",
            "occupation:token",
            "zip_code:token",
        ],
    )?;

    let ifile = dir.join("ml-100k.item");
    let mut c = delimited::read(
        &ifile,
        layout,
        &[
            Field::new("item_id:token", "id", Parse::Cat),
            Field::new("release_year:token", "year", Parse::Text),
            Field::new("class:token_seq", "genres", Parse::List(" ".into())),
        ],
    )?
    .into_iter()
    .map(|(_, c)| c);
    let ids = ints(c.next().unwrap(), &ifile, "item_id:token")?;
    let years = strs(c.next().unwrap());
    let genres = lists(c.next().unwrap());
    let items = ids
        .into_iter()
        .zip(years.into_iter().zip(genres))
        .map(|(id, (year, genres))| (id, Item { year, genres }))
        .collect();
    Ok((ratings, users, items))
}

fn read_grouplens(dir: &Path) -> Result<Tables> {
    let ratings = read_ratings(
        dir.join("u.data"),
        Layout {
            delimiter: b'\t',
            header: false,
            quoting: false,
        },
        ["#0", "#1", "#2"],
    )?;
    let bar = Layout {
        delimiter: b'|',
        header: false,
        quoting: false,
    };
    let users = read_users(&dir.join("u.user"), bar, ["#0", "#1", "#2", "#3", "#4"])?;

    let ifile = dir.join("u.item");
    let mut fields = vec![
        Field::new("#0", "id", Parse::Cat),
        Field::new("#2", "date", Parse::Text),
    ];
    fields.extend(
        (0..GENRES.len()).map(|g| Field::new(format!("#{}", 5 + g), GENRES[g], Parse::Label)),
    );
    let mut c = delimited::read(&ifile, bar, &fields)?
        .into_iter()
        .map(|(_, c)| c);
    let ids = ints(c.next().unwrap(), &ifile, "#0")?;
    let dates = strs(c.next().unwrap());
    let flags: Vec<Vec<u8>> = c
        .map(|col| match col {
            ColumnData::Label(v) => v,
            _ => Vec::new(),
        })
        .collect();
    let items = ids
        .into_iter()
        .enumerate()
        .map(|(r, id)| {
            let year = dates[r].rsplit('-').next().unwrap_or("").to_string();
            let genres = GENRES
                .iter()
                .zip(&flags)
                .filter(|(_, f)| f[r] == 1)
                .map(|(g, _)| g.to_string())
                .collect();
            (id, Item { year, genres })
        })
        .collect();
    Ok((ratings, users, items))
}

/// `raw`: a folder in RecBole layout or in GroupLens layout.
pub fn prepare(raw: &Path, opts: &PrepareOptions) -> Result<Prepared> {
    let (ratings, users, items) = if raw.join("ml-100k.inter").is_file() {
        read_recbole(raw)?
    } else if raw.join("u.data").is_file() {
        read_grouplens(raw)?
    } else {
        return Err(DataError::file(
            raw,
            "neither RecBole files (ml-100k.inter, ml-100k.user, ml-100k.item) nor GroupLens files \
             (u.data, u.user, u.item) are in this folder",
        ));
    };
    let n = ratings.ratings.len();
    let mut table = Table::new();
    let (mut age, mut gender, mut occupation, mut zip3) =
        (Vec::with_capacity(n), Vec::new(), Vec::new(), Vec::new());
    let (mut year, mut genres) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for r in 0..n {
        let (u, i) = (ratings.users[r], ratings.items[r]);
        let user = users.get(&u).ok_or_else(|| {
            DataError::cell(
                &ratings.file,
                "user_id",
                r + 1,
                format!("user {u} is not in the user file"),
            )
        })?;
        let item = items.get(&i).ok_or_else(|| {
            DataError::cell(
                &ratings.file,
                "item_id",
                r + 1,
                format!("item {i} is not in the item file"),
            )
        })?;
        age.push(user.age);
        gender.push(user.gender.clone());
        occupation.push(user.occupation.clone());
        zip3.push(user.zip.chars().take(3).collect::<String>());
        year.push(item.year.clone());
        genres.push(item.genres.clone());
    }
    table.push("user_id", ColumnData::Int(ratings.users.clone()));
    table.push("item_id", ColumnData::Int(ratings.items.clone()));
    table.push("age", ColumnData::Int(age));
    table.push("gender", ColumnData::Str(gender));
    table.push("occupation", ColumnData::Str(occupation));
    table.push("zip3", ColumnData::Str(zip3));
    table.push("release_year", ColumnData::Str(year));
    table.push("genres", ColumnData::List(genres));
    let spec = spec();
    let splits = add_row_id_and_split(&mut table, &spec, opts);
    let (like, above, love) = labels(&ratings, &splits);
    table.push("like", ColumnData::Label(like));
    table.push("above_mean", ColumnData::Label(above));
    table.push("love", ColumnData::Label(love));
    write(table, spec, opts)
}

/// like, above the user's train mean, love. A user with no train rating is compared with the
/// mean of all train ratings.
fn labels(r: &Ratings, splits: &[Split]) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let mut sums: FxHashMap<i64, (f64, usize)> = FxHashMap::default();
    let (mut total, mut count) = (0.0f64, 0usize);
    for ((&u, &rating), &s) in r.users.iter().zip(&r.ratings).zip(splits) {
        if s == Split::Train {
            let e = sums.entry(u).or_insert((0.0, 0));
            e.0 += rating as f64;
            e.1 += 1;
            total += rating as f64;
            count += 1;
        }
    }
    let global = total / count.max(1) as f64;
    let like = r.ratings.iter().map(|&x| u8::from(x >= 4.0)).collect();
    let love = r.ratings.iter().map(|&x| u8::from(x >= 5.0)).collect();
    let above = r
        .users
        .iter()
        .zip(&r.ratings)
        .map(|(u, &x)| {
            let mean = sums.get(u).map_or(global, |&(s, c)| s / c as f64);
            u8::from(x as f64 > mean)
        })
        .collect();
    (like, above, love)
}
