//! The task registry: one JSONL file per session, `{audit_dir}/{session}_tasks.jsonl`, one
//! whole [`TaskRecord`] per line, appended at every transition and synced to disk. Reading
//! merges every session's file; per task the record with the highest revision wins (then the
//! later `updated_at`, then the later line), so a task written by a crashed session resumes
//! in the next one.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use crate::error::OrchError;
use crate::model::{TaskId, TaskRecord};

/// File name suffix of registry files.
pub const REGISTRY_SUFFIX: &str = "_tasks.jsonl";

/// The registry of one session (it reads all sessions' files).
#[derive(Debug, Clone)]
pub struct Registry {
    dir: PathBuf,
    file: PathBuf,
}

/// Every task known, newest record each, plus the lines that could not be read.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    /// By task id.
    pub tasks: BTreeMap<TaskId, TaskRecord>,
    /// One line per unreadable line or file.
    pub warnings: Vec<String>,
}

impl Registry {
    /// The registry of `session` under `dir` (created if missing).
    pub fn open(dir: &Path, session: &str) -> Result<Registry, OrchError> {
        std::fs::create_dir_all(dir).map_err(|e| OrchError::Registry {
            path: dir.to_path_buf(),
            detail: format!("cannot create the directory: {e}"),
        })?;
        Ok(Registry {
            dir: dir.to_path_buf(),
            file: dir.join(format!("{session}{REGISTRY_SUFFIX}")),
        })
    }

    /// This session's file.
    pub fn path(&self) -> &Path {
        &self.file
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends one record (one line) and syncs it.
    pub fn append(&self, rec: &TaskRecord) -> Result<(), OrchError> {
        let err = |detail: String| OrchError::Registry {
            path: self.file.clone(),
            detail,
        };
        let mut line =
            serde_json::to_string(rec).map_err(|e| err(format!("cannot encode: {e}")))?;
        line.push('\n');
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.file)
            .map_err(|e| err(format!("cannot open: {e}")))?;
        f.write_all(line.as_bytes())
            .and_then(|_| f.sync_data())
            .map_err(|e| err(format!("cannot append: {e}")))
    }

    /// Reads every session's registry file in the directory.
    pub fn load(&self) -> Result<Loaded, OrchError> {
        let mut out = Loaded::default();
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => {
                return Err(OrchError::Registry {
                    path: self.dir.clone(),
                    detail: format!("cannot list: {e}"),
                })
            }
        };
        let mut files: Vec<PathBuf> = rd
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.ends_with(REGISTRY_SUFFIX))
            })
            .collect();
        files.sort();
        for f in files {
            let file = match std::fs::File::open(&f) {
                Ok(x) => x,
                Err(e) => {
                    out.warnings
                        .push(format!("{}: cannot open: {e}", f.display()));
                    continue;
                }
            };
            for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
                let line = match line {
                    Ok(l) => l,
                    Err(e) => {
                        out.warnings
                            .push(format!("{}:{}: unreadable: {e}", f.display(), i + 1));
                        break;
                    }
                };
                if line.trim().is_empty() {
                    continue;
                }
                match serde_json::from_str::<TaskRecord>(&line) {
                    Ok(rec) => {
                        let newer = match out.tasks.get(&rec.task_id) {
                            None => true,
                            Some(old) => {
                                (rec.revision, rec.updated_at) >= (old.revision, old.updated_at)
                            }
                        };
                        if newer {
                            out.tasks.insert(rec.task_id.clone(), rec);
                        }
                    }
                    Err(e) => out.warnings.push(format!(
                        "{}:{}: not a task record ({e}); line skipped",
                        f.display(),
                        i + 1
                    )),
                }
            }
        }
        for w in &out.warnings {
            tracing::warn!("{w}");
        }
        Ok(out)
    }

    /// The newest record of one task.
    pub fn get(&self, id: &TaskId) -> Result<TaskRecord, OrchError> {
        self.load()?
            .tasks
            .remove(id)
            .ok_or_else(|| OrchError::UnknownTask {
                id: id.to_string(),
                dir: self.dir.clone(),
            })
    }
}
