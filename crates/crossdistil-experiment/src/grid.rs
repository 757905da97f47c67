//! The grid file: configurations, variants merged into each, and the cells they make.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{ExperimentError, Result, io};
use serde::Deserialize;

/// The variant a grid without `[variants]` runs every configuration as.
pub const BASE_VARIANT: &str = "base";

/// A grid of runs, as read from its TOML file.
///
/// ```toml
/// name = "adult-ablation"
/// configs = ["configs/adult-mmoe.toml", "configs/adult-ple.toml"]
/// baseline = "backbone"            # the variant the others are compared with (optional)
///
/// [common]                         # merged into every config first (optional)
/// train.epochs = 10
///
/// [variants.backbone]              # each variant: a table merged into every config
/// distill.mode = "off"
///
/// [variants.crossdistil]
/// distill.mode = "crossdistil"
/// ```
///
/// Relative paths in `configs` are resolved against the folder that [`Grid::write_cells`] is given
/// (the workspace root for the grids in `experiments/`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grid {
    /// The experiment's name, the title of its results.
    pub name: String,
    /// The configuration files, one group of cells each.
    pub configs: Vec<PathBuf>,
    /// The variant that every other variant of the same configuration is compared with.
    #[serde(default)]
    pub baseline: Option<String>,
    /// Merged into every config before the variant (for example `tasks = [...]`).
    #[serde(default)]
    pub common: toml::Table,
    /// Variant name -> the table merged into every config. Empty after reading means one
    /// variant, [`BASE_VARIANT`], that changes nothing.
    #[serde(default)]
    pub variants: BTreeMap<String, toml::Table>,
}

/// One cell of a grid: a configuration and a variant, run once per seed in `dir/seed-<s>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    /// The configuration file the cell derives from.
    pub config: PathBuf,
    /// The variant's name.
    pub variant: String,
    /// The cell's folder: its merged `config.toml` and one run folder per seed.
    pub dir: PathBuf,
}

impl Cell {
    /// The configuration's name: its file stem, as results and plots show it.
    pub fn config_name(&self) -> String {
        stem(&self.config)
    }

    /// The merged configuration that every seed of the cell trains with.
    pub fn config_file(&self) -> PathBuf {
        self.dir.join("config.toml")
    }

    /// The run folder of one seed.
    pub fn run_dir(&self, seed: u64) -> PathBuf {
        self.dir.join(format!("seed-{seed}"))
    }
}

pub(crate) fn stem(config: &Path) -> String {
    config
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "config".into())
}

impl Grid {
    /// Parses a grid from TOML text; `origin` names it in errors. Checks that there is at least
    /// one config and that the baseline is one of the variants, and fills in [`BASE_VARIANT`]
    /// when there are none.
    pub fn parse(text: &str, origin: &str) -> Result<Grid> {
        let mut grid: Grid =
            toml::from_str(text).map_err(|e| ExperimentError::Invalid(format!("{origin}: {e}")))?;
        if grid.configs.is_empty() {
            return Err(ExperimentError::Invalid(format!(
                "{origin}: the grid needs at least one config"
            )));
        }
        if grid.variants.is_empty() {
            grid.variants
                .insert(BASE_VARIANT.into(), toml::Table::new());
        }
        if let Some(b) = &grid.baseline
            && !grid.variants.contains_key(b)
        {
            return Err(ExperimentError::Invalid(format!(
                "{origin}: baseline `{b}` is not one of the variants"
            )));
        }
        Ok(grid)
    }

    /// Reads and parses a grid file.
    pub fn read(path: &Path) -> Result<Grid> {
        let text = std::fs::read_to_string(path).map_err(io("read", path))?;
        Grid::parse(&text, &path.display().to_string())
    }

    /// The configuration of one variant: `base`, then `[common]`, then the variant's table,
    /// merged with [`merge_tables`]. `None` when the grid has no such variant.
    pub fn merged(&self, base: &toml::Table, variant: &str) -> Option<toml::Table> {
        let over = self.variants.get(variant)?;
        let mut merged = base.clone();
        merge_tables(&mut merged, &self.common);
        merge_tables(&mut merged, over);
        Some(merged)
    }

    /// Every cell, configs in grid order and variants in name order: reads each config
    /// (relative paths against `root`), writes the merged configuration of each variant to
    /// `out/<config>/<variant>/config.toml` and checks it as a run configuration.
    pub fn write_cells(&self, root: &Path, out: &Path) -> Result<Vec<Cell>> {
        let planned = self.plan_cells(root, out)?;
        let mut cells = Vec::with_capacity(planned.len());
        for (cell, text) in planned {
            std::fs::create_dir_all(&cell.dir).map_err(io("create", &cell.dir))?;
            crossdistil_data::write_atomic(&cell.config_file(), text.as_bytes())?;
            cells.push(cell);
        }
        Ok(cells)
    }

    /// [`Grid::write_cells`] without writing anything: every cell with the text of its merged
    /// configuration, each checked as a run configuration (the error names the config file and
    /// the variant).
    pub fn plan_cells(&self, root: &Path, out: &Path) -> Result<Vec<(Cell, String)>> {
        let mut cells = Vec::new();
        for c in &self.configs {
            let path = if c.is_absolute() {
                c.clone()
            } else {
                root.join(c)
            };
            let text = std::fs::read_to_string(&path).map_err(io("read", &path))?;
            let base: toml::Table = toml::from_str(&text)
                .map_err(|e| ExperimentError::Invalid(format!("{}: {e}", path.display())))?;
            for v in self.variants.keys() {
                let merged = self.merged(&base, v).expect("a variant of this grid");
                let cell = Cell {
                    config: path.clone(),
                    variant: v.clone(),
                    dir: out.join(stem(&path)).join(v),
                };
                let text = toml::to_string(&merged).map_err(|e| {
                    ExperimentError::Invalid(format!("{}: {e}", cell.config_file().display()))
                })?;
                crossdistil_train::RunConfig::from_toml(&text).map_err(|error| {
                    ExperimentError::Config {
                        config: path.clone(),
                        variant: v.clone(),
                        error: Box::new(error),
                    }
                })?;
                cells.push((cell, text));
            }
        }
        Ok(cells)
    }
}

/// Merges `over` into `base`, table by table: a key whose value is a table in both is merged
/// recursively, any other key of `over` replaces (or adds) the one of `base`.
pub fn merge_tables(base: &mut toml::Table, over: &toml::Table) {
    for (k, v) in over {
        match (base.get_mut(k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge_tables(b, o),
            _ => {
                base.insert(k.clone(), v.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_merge_into_nested_tables() {
        let mut base: toml::Table =
            toml::from_str("[train]\nepochs = 3\nlr = 0.1\n[distill]\nmode = \"off\"\n").unwrap();
        let over: toml::Table =
            toml::from_str("distill.mode = \"crossdistil\"\ntrain.lr = 0.01\n").unwrap();
        merge_tables(&mut base, &over);
        assert_eq!(base["train"]["epochs"].as_integer(), Some(3));
        assert_eq!(base["train"]["lr"].as_float(), Some(0.01));
        assert_eq!(base["distill"]["mode"].as_str(), Some("crossdistil"));
    }

    #[test]
    fn common_comes_before_the_variant() {
        let grid = Grid::parse(
            "name = \"g\"\nconfigs = [\"a.toml\"]\n[common]\ntrain.lr = 0.5\ntrain.epochs = 2\n\
             [variants.v]\ntrain.lr = 0.25\n",
            "test",
        )
        .unwrap();
        let base: toml::Table = toml::from_str("[train]\nlr = 1.0\nseed = 7\n").unwrap();
        let m = grid.merged(&base, "v").unwrap();
        assert_eq!(m["train"]["lr"].as_float(), Some(0.25));
        assert_eq!(m["train"]["epochs"].as_integer(), Some(2));
        assert_eq!(m["train"]["seed"].as_integer(), Some(7));
        assert!(grid.merged(&base, "missing").is_none());
    }

    #[test]
    fn parse_fills_the_base_variant_and_checks_the_baseline() {
        let g = Grid::parse("name = \"g\"\nconfigs = [\"a.toml\"]\n", "t").unwrap();
        assert_eq!(g.variants.keys().collect::<Vec<_>>(), [BASE_VARIANT]);
        let e = Grid::parse(
            "name = \"g\"\nconfigs = [\"a.toml\"]\nbaseline = \"x\"\n",
            "t",
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("baseline `x`"), "{e:#}");
        let e = Grid::parse("name = \"g\"\nconfigs = []\n", "t").unwrap_err();
        assert!(format!("{e:#}").contains("at least one config"), "{e:#}");
        assert!(Grid::parse("name = \"g\"\nconfigs = [\"a\"]\nextra = 1\n", "t").is_err());
    }

    #[test]
    fn cells_are_checked_before_anything_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let grid = Grid::parse(
            "name = \"g\"\nconfigs = [\"bad.toml\"]\n[variants.v]\nno_such_key = 1\n",
            "t",
        )
        .unwrap();
        std::fs::write(dir.path().join("bad.toml"), "").unwrap();
        let e = grid
            .write_cells(dir.path(), &dir.path().join("out"))
            .unwrap_err();
        assert!(format!("{e:#}").contains("variant `v`"), "{e:#}");
        // A grid with a bad cell writes nothing: no folder is left behind.
        assert!(!dir.path().join("out").exists());
    }
}
