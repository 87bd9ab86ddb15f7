//! The day's picture, readable at a page's width: one row per model, one
//! column per stage (the function that submits the stage's Batch jobs), a
//! box per job, an arrow from a job to the job its file on S3 started, and
//! a legend; drawn as Graphviz's DOT or as Mermaid.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde_json::Value;

use crate::report::{Followed, RunReport};
use crate::simulate::{Simulation, Start};
use emmaa_runtime::action::Action;
use emmaa_runtime::digest::sha256_hex;
use emmaa_runtime::functions::FUNCTIONS;

/// The day laid out as rows and columns.
#[derive(Debug, Default)]
pub struct Picture {
    /// The stages, in the order the pipeline reaches them: each named by
    /// the functions that submit its jobs (one a line).
    pub columns: Vec<String>,
    /// One per model, in the order of its first job.
    pub rows: Vec<Row>,
    /// From a job to the job its file started.
    pub arrows: Vec<Arrow>,
}

/// One model's day.
#[derive(Debug)]
pub struct Row {
    pub model: String,
    /// The schedules the model's day started from.
    pub schedules: BTreeSet<String>,
    pub jobs: Vec<Cell>,
}

/// One job in its row, under its stage's column.
#[derive(Debug)]
pub struct Cell {
    pub job: String,
    pub column: usize,
    /// Its name without the model, and the time it was submitted.
    pub label: String,
    /// Started by a schedule's fan-out rather than another job's file.
    pub first: bool,
    pub writes: Vec<String>,
    /// Its box's colour (`deploy status`: how its work stands), when not the plain grey.
    pub fill: Option<&'static str>,
}

#[derive(Debug, PartialEq)]
pub struct Arrow {
    pub from: String,
    pub to: String,
    /// The file on S3 that started `to`'s function.
    pub file: String,
}

/// What led to a job.
enum Cause {
    Schedule(String),
    /// The file a job wrote: (job, key).
    File(String, String),
    /// An invocation queued on its own (the day under quotas).
    Unknown,
}

const UNNAMED: &str = "(no model)";

impl Picture {
    pub fn of(simulation: &Simulation) -> Picture {
        let mut causes: BTreeMap<String, Cause> = BTreeMap::new();
        for run in &simulation.runs {
            let mut submitted = Vec::new();
            jobs_of(&run.run, &mut submitted);
            for job in submitted {
                let cause = match &run.start {
                    Start::Schedule { schedule } => Cause::Schedule(schedule.clone()),
                    Start::File { key, written_by, .. } => Cause::File(written_by.clone(), key.clone()),
                    Start::Invocation { .. } => Cause::Unknown,
                };
                causes.entry(job).or_insert(cause);
            }
        }
        // A job's depth: how many files lie between it and the schedule.
        let mut depth: BTreeMap<&str, usize> = BTreeMap::new();
        for job in &simulation.jobs {
            let d = match causes.get(&job.name) {
                Some(Cause::File(parent, _)) => depth.get(parent.as_str()).map_or(0, |d| d + 1),
                _ => 0,
            };
            depth.insert(&job.name, d);
        }
        // A stage's column: the deepest its function's jobs reach, so a
        // curated model's model manager (started by the schedule's fan-out)
        // stands under the other models' model managers.
        let mut deepest: BTreeMap<&str, usize> = BTreeMap::new();
        for job in &simulation.jobs {
            let d = depth[job.name.as_str()];
            let entry = deepest.entry(&job.submitted_by).or_insert(d);
            *entry = (*entry).max(d);
        }
        let depths: BTreeSet<usize> = deepest.values().copied().collect();
        let columns: Vec<usize> = depths.into_iter().collect();
        let order = |function: &str| {
            FUNCTIONS
                .iter()
                .position(|entry| function.strip_prefix("emmaa-") == Some(entry.function))
                .unwrap_or(usize::MAX)
        };
        let titles = columns
            .iter()
            .map(|d| {
                let mut functions: Vec<&str> = deepest
                    .iter()
                    .filter(|(_, deep)| *deep == d)
                    .map(|(function, _)| *function)
                    .collect();
                functions.sort_by_key(|function| (order(function), *function));
                functions.join("\n")
            })
            .collect();

        let mut picture = Picture {
            columns: titles,
            ..Picture::default()
        };
        for job in &simulation.jobs {
            let model = job.model.as_deref().unwrap_or(UNNAMED);
            let row = match picture.rows.iter().position(|row| row.model == model) {
                Some(at) => at,
                None => {
                    picture.rows.push(Row {
                        model: model.to_owned(),
                        schedules: BTreeSet::new(),
                        jobs: Vec::new(),
                    });
                    picture.rows.len() - 1
                }
            };
            let deep = deepest[job.submitted_by.as_str()];
            let column = columns.iter().position(|d| *d == deep).unwrap_or_default();
            let first = match causes.get(&job.name) {
                Some(Cause::File(parent, key)) => {
                    picture.arrows.push(Arrow {
                        from: parent.clone(),
                        to: job.name.clone(),
                        file: key.clone(),
                    });
                    false
                }
                Some(Cause::Schedule(schedule)) => {
                    picture.rows[row].schedules.insert(schedule.clone());
                    true
                }
                Some(Cause::Unknown) | None => true,
            };
            picture.rows[row].jobs.push(Cell {
                job: job.name.clone(),
                column,
                label: label(model, &job.name),
                first,
                writes: job.writes.clone(),
                fill: None,
            });
        }
        picture.rows.sort_by(|a, b| a.model.cmp(&b.model));
        picture
    }

    /// Only `model`'s row.
    pub fn for_model(mut self, model: &str) -> Picture {
        self.rows.retain(|row| row.model == model);
        let kept: BTreeSet<&str> = self
            .rows
            .iter()
            .flat_map(|row| row.jobs.iter().map(|cell| cell.job.as_str()))
            .collect();
        let arrows = std::mem::take(&mut self.arrows);
        self.arrows = arrows
            .into_iter()
            .filter(|arrow| kept.contains(arrow.to.as_str()))
            .collect();
        self
    }

    /// The picture coloured by how each job's work stands: `state_of(job)`
    /// answers the word its box shows instead of the time, and the box's
    /// colour; a job it answers nothing for keeps its plain look.
    pub fn coloured(mut self, state_of: impl Fn(&str) -> Option<(String, &'static str)>) -> Picture {
        for row in &mut self.rows {
            for cell in &mut row.jobs {
                if let Some((word, fill)) = state_of(&cell.job) {
                    let kind = cell.label.split('\n').next().unwrap_or_default();
                    cell.label = format!("{kind}\n{word}");
                    cell.fill = Some(fill);
                }
            }
        }
        self
    }

    /// Graphviz's DOT: rows stacked in model order, columns aligned, the
    /// legend under them.
    pub fn dot(&self) -> String {
        let mut out = String::from(concat!(
            "digraph day {\n",
            "    rankdir=LR; newrank=true; nodesep=0.12; ranksep=0.35;\n",
            "    fontname=\"Helvetica\"; fontsize=10; labelloc=b; labeljust=l;\n",
            "    node [fontname=\"Helvetica\", fontsize=10, shape=box, style=\"rounded,filled\", ",
            "fillcolor=\"#e5e7eb\", height=0.3, margin=\"0.08,0.03\"];\n",
            "    edge [arrowsize=0.6, color=\"#6b7280\"];\n",
        ));
        // The header row: the stages, in order (invisible edges hold it).
        let _ = writeln!(
            out,
            "    head [label=\"model\\n(schedules)\", shape=plaintext, style=\"\", fontcolor=\"#374151\"];"
        );
        let mut previous = "head".to_owned();
        for (at, column) in self.columns.iter().enumerate() {
            let _ = writeln!(
                out,
                "    head_{at} [label={}, shape=plaintext, style=\"\", fontcolor=\"#374151\"];",
                quoted(column)
            );
            let _ = writeln!(out, "    {previous} -> head_{at} [style=invis];");
            previous = format!("head_{at}");
        }
        let mut by_column: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        let mut heads = vec!["head".to_owned()];
        for (at, row) in self.rows.iter().enumerate() {
            let head = format!("row_{at}");
            let schedules: Vec<&str> = row.schedules.iter().map(|s| short(s)).collect();
            let _ = writeln!(
                out,
                "    {head} [label={}, shape=plaintext, style=\"\"];",
                quoted(&format!("{}\n({})", row.model, schedules.join(", ")).replace("\n()", ""))
            );
            for cell in &row.jobs {
                let id = id("job", &cell.job);
                let tooltip = match cell.writes.as_slice() {
                    [] => cell.job.clone(),
                    writes => format!("{} writes {}", cell.job, writes.join(", ")),
                };
                let fill = cell
                    .fill
                    .map(|fill| format!(", fillcolor=\"{fill}\""))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "    {id} [label={}, tooltip={}{fill}];",
                    quoted(&cell.label),
                    quoted(&tooltip)
                );
                if cell.first {
                    let _ = writeln!(out, "    {head} -> {id} [style=dashed];");
                }
                by_column.entry(cell.column).or_default().push(id);
            }
            heads.push(head);
        }
        for arrow in &self.arrows {
            let _ = writeln!(
                out,
                "    {} -> {} [tooltip={}];",
                id("job", &arrow.from),
                id("job", &arrow.to),
                quoted(&arrow.file)
            );
        }
        // Rows in model order: invisible edges within the first column.
        let _ = writeln!(out, "    {{ rank=same; {}; }}", heads.join("; "));
        for pair in heads.windows(2) {
            let _ = writeln!(out, "    {} -> {} [style=invis];", pair[0], pair[1]);
        }
        for (at, ids) in &by_column {
            let _ = writeln!(out, "    {{ rank=same; head_{at}; {}; }}", ids.join("; "));
        }
        let _ = writeln!(out, "    label=<{}>;", legend_html());
        out.push_str("}\n");
        out
    }

    /// Mermaid's flowchart: a subgraph per model, and the legend.
    pub fn mermaid(&self) -> String {
        let mut out = String::from("flowchart LR\n");
        for (at, row) in self.rows.iter().enumerate() {
            let schedules: Vec<&str> = row.schedules.iter().map(|s| short(s)).collect();
            let _ = writeln!(out, "    subgraph row_{at}[\"{}\"]", row.model);
            let _ = writeln!(out, "        direction LR");
            let _ = writeln!(
                out,
                "        start_{at}([\"{}\"])",
                match schedules.is_empty() {
                    true => "started".to_owned(),
                    false => schedules.join(", "),
                }
            );
            for cell in &row.jobs {
                let _ = writeln!(
                    out,
                    "        {}[\"{}\"]",
                    id("job", &cell.job),
                    cell.label.replace('\n', "<br/>")
                );
                if let Some(fill) = cell.fill {
                    let _ = writeln!(out, "        style {} fill:{fill}", id("job", &cell.job));
                }
            }
            for cell in row.jobs.iter().filter(|cell| cell.first) {
                let _ = writeln!(out, "        start_{at} -.-> {}", id("job", &cell.job));
            }
            for arrow in self
                .arrows
                .iter()
                .filter(|arrow| row.jobs.iter().any(|cell| cell.job == arrow.to))
            {
                let _ = writeln!(
                    out,
                    "        {} --> {}",
                    id("job", &arrow.from),
                    id("job", &arrow.to)
                );
            }
            let _ = writeln!(out, "    end");
        }
        out.push_str(concat!(
            "    subgraph legend[\"Legend\"]\n",
            "        direction LR\n",
            "        legend_schedule([\"schedules\"]) -.->|fan-out submitted| legend_job[\"a Batch job<br/>the time it was submitted\"]\n",
            "        legend_job -->|its file on S3 started| legend_next[\"the next stage's job\"]\n",
            "    end\n",
        ));
        out
    }
}

/// The jobs a run submitted, through every invocation it made.
fn jobs_of(report: &RunReport, into: &mut Vec<String>) {
    for reported in &report.actions {
        match &reported.action {
            Action::BatchSubmit { job_name, .. } => into.push(job_name.clone()),
            Action::LambdaInvoke { .. } => {
                if let Some(Followed::Ran(inner)) = reported.run.as_deref() {
                    jobs_of(inner, into);
                }
            }
            _ => {}
        }
    }
}

/// A job's label: its name without the model, then the time it was
/// submitted on a line of its own.
fn label(model: &str, job: &str) -> String {
    match split_job_name(model, job) {
        (kind, Some(time)) => format!("{kind}\n{time}"),
        (kind, None) => kind,
    }
}

/// `{model}_{kind}_{YYYYMMDD}_{HHMMSS}` into the kind and `HH:MM:SS`.
fn split_job_name(model: &str, job: &str) -> (String, Option<String>) {
    let rest = job
        .strip_prefix(model)
        .and_then(|rest| rest.strip_prefix('_'))
        .unwrap_or(job);
    let mut parts = rest.rsplitn(3, '_');
    let (time, date, kind) = (parts.next(), parts.next(), parts.next());
    match (kind, date, time) {
        (Some(kind), Some(date), Some(time))
            if date.len() == 8
                && time.len() == 6
                && date.bytes().chain(time.bytes()).all(|b| b.is_ascii_digit()) =>
        {
            let time = format!("{}:{}:{}", &time[..2], &time[2..4], &time[4..]);
            (kind.to_owned(), Some(time))
        }
        _ => (rest.to_owned(), None),
    }
}

fn id(kind: &str, name: &str) -> String {
    let safe: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    // Names that differ only in punctuation (`a-b`, `a_b`) keep ids apart
    // by a digest of the name itself.
    match safe == name {
        true => format!("{kind}_{safe}"),
        false => format!("{kind}_{safe}_{}", &sha256_hex(name.as_bytes())[..4]),
    }
}

/// A schedule's name without the `Schedule` every one of them ends with.
fn short(schedule: &str) -> &str {
    schedule
        .strip_suffix("Schedule")
        .filter(|rest| !rest.is_empty())
        .unwrap_or(schedule)
}

fn quoted(text: &str) -> String {
    Value::String(text.to_owned()).to_string()
}

fn legend_html() -> &'static str {
    concat!(
        "<table border=\"0\" cellborder=\"0\" cellspacing=\"2\">",
        "<tr><td align=\"left\"><b>How to read the day</b></td></tr>",
        "<tr><td align=\"left\">a row: one model, and the schedules its day started from</td></tr>",
        "<tr><td align=\"left\">a column: a stage, named by the functions that submit its Batch jobs</td></tr>",
        "<tr><td align=\"left\">a box: a Batch job, named without its model, and the time it was submitted</td></tr>",
        "<tr><td align=\"left\">a dashed arrow: the schedule's fan-out submitted the job</td></tr>",
        "<tr><td align=\"left\">a solid arrow: the file the job writes on S3 started the next stage</td></tr>",
        "</table>"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_name_splits_into_its_kind_and_time() {
        assert_eq!(
            split_job_name("aml", "aml_large_corpus_tests_tests_20200204_120006"),
            ("large_corpus_tests_tests".into(), Some("12:00:06".into()))
        );
        assert_eq!(
            split_job_name("marm_model", "marm_model_update_20200204_120001"),
            ("update".into(), Some("12:00:01".into()))
        );
        assert_eq!(split_job_name("aml", "aml_odd"), ("odd".into(), None));
    }

    #[test]
    fn names_that_differ_only_in_punctuation_get_ids_of_their_own() {
        assert_ne!(id("job", "a-b_update"), id("job", "a_b_update"));
        assert_eq!(id("job", "a_b_update"), "job_a_b_update");
    }
}
