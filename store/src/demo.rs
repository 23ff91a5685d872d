//! Realistic, deterministic demo data: what a few weeks of agent pipelines leave in `workflow_state`.
//!
//! The dashboard and the CLI need something to show before a real flujo deployment writes runs, and tests need
//! data that looks like production without shipping a production file. [`generate`] makes that data from a
//! seed and an instant, with no randomness from outside (a small SplitMix64 generator, so no `rand`
//! dependency): the same `(count, seed, now)` always gives the same runs.
//!
//! What the runs look like:
//!
//! - seven pipelines (`customer-support-triage`, `invoice-extraction`, `code-review-bot`, `sql-agent`,
//!   `research-summarizer`, `translation-qa`, `hitl-approval`) with display names (some unicode) and versions;
//! - all five statuses: mostly completed, about 15 % failed, some running, paused and cancelled; a few running
//!   or paused runs are *stuck* (no update for many hours);
//! - recurring error messages whose details vary (step names, retry delays, limits, quoted values), so grouping
//!   failures by signature has something to find;
//! - creation times over the 60 days before `now`, denser recently (some in the last 24 hours and the last
//!   hour); `updated_at` never before `created_at` nor after `now`;
//! - contexts of one to three kilobytes with a few of 50–100 KB, step histories shaped like flujo's, execution
//!   time and memory mostly present.
//!
//! ```no_run
//! # async fn demo() -> Result<(), flowstate_store::StoreError> {
//! let store = flowstate_store::Store::open("demo.db").await?;
//! let written = flowstate_store::demo::write_demo(&store, 2_000, 42).await?;
//! println!("{written} demo runs written");
//! # Ok(()) }
//! ```

use chrono::{DateTime, Duration, SubsecRound, Utc};
use serde_json::{json, Map, Value};

use crate::{ListQuery, Result, Status, Store, StoreError, WorkflowState};

/// How far back [`generate`] spreads creation times.
pub const WINDOW_DAYS: i64 = 60;

/// Runs written per transaction by [`write_demo`].
pub const CHUNK: usize = 1000;

/// A small, fast, deterministic generator (SplitMix64). Not for anything secret.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        // Mix the seed once so that nearby seeds do not start on nearby states.
        let mut rng = Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B);
        rng.next_u64();
        rng
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        debug_assert!(lo <= hi);
        let span = (hi - lo) as u64 + 1;
        lo + (self.next_u64() % span) as i64
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[(self.next_u64() % items.len() as u64) as usize]
    }

    /// An index chosen with the given relative weights.
    fn weighted(&mut self, weights: &[u32]) -> usize {
        let total: u32 = weights.iter().sum();
        let mut x = (self.next_u64() % u64::from(total)) as u32;
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                return i;
            }
            x -= w;
        }
        weights.len() - 1
    }

    fn hex(&mut self, digits: usize) -> String {
        let mut s = String::with_capacity(digits);
        while s.len() < digits {
            s.push_str(&format!("{:016x}", self.next_u64()));
        }
        s.truncate(digits);
        s
    }

    /// A value rounded to `places` decimals.
    fn decimal(&mut self, lo: f64, hi: f64, places: i32) -> f64 {
        let f = 10f64.powi(places);
        ((lo + (hi - lo) * self.unit()) * f).round() / f
    }
}

/// One of the demo pipelines.
struct Pipeline {
    id: &'static str,
    name: &'static str,
    versions: &'static [&'static str],
    steps: &'static [&'static str],
    /// Relative share of the runs.
    weight: u32,
    prompts: &'static [&'static str],
}

const PIPELINES: [Pipeline; 7] = [
    Pipeline {
        id: "customer-support-triage",
        name: "Customer Support Triage",
        versions: &["1.0.0", "1.1.0", "1.2.3"],
        steps: &["classify", "retrieve_kb", "draft_reply", "review"],
        weight: 27,
        prompts: &[
            "My order #{n} arrived damaged, can I get a refund?",
            "I was charged twice for invoice {n}",
            "How do I reset my password? Account {n}",
            "Bonjour, ma commande {n} n'est pas arrivée — pouvez-vous vérifier ?",
            "Hola, necesito ayuda con la factura {n}, por favor",
            "مرحبا، أحتاج إلى مساعدة في الفاتورة {n}",
            "注文番号 {n} のキャンセルをお願いします",
        ],
    },
    Pipeline {
        id: "invoice-extraction",
        name: "Invoice Extraction (OCR → JSON)",
        versions: &["2.0.0", "2.0.1"],
        steps: &["fetch", "ocr", "extract", "validate", "export"],
        weight: 15,
        prompts: &[
            "Extract totals from scan INV-{n}.pdf",
            "Process supplier invoice {n} (Müller GmbH)",
            "Parse receipt batch {n} — 12 pages",
        ],
    },
    Pipeline {
        id: "code-review-bot",
        name: "Code Review Bot",
        versions: &["0.9.0", "1.0.0"],
        steps: &["fetch_diff", "review", "comment"],
        weight: 14,
        prompts: &[
            "Review PR #{n} for security issues",
            "Check PR #{n}: refactor of the billing module",
            "Summarise the risk of PR #{n} before merge",
        ],
    },
    Pipeline {
        id: "sql-agent",
        name: "SQL Agent",
        versions: &["1.0.0", "1.0.1", "1.1.0"],
        steps: &["parse_question", "generate_sql", "execute", "summarize"],
        weight: 15,
        prompts: &[
            "How many orders were shipped late in region {n}?",
            "Top 10 customers by revenue since invoice {n}",
            "Average ticket resolution time for team {n}",
        ],
    },
    Pipeline {
        id: "research-summarizer",
        name: "Research Summarizer",
        versions: &["3.1.0"],
        steps: &["plan", "search", "fetch", "analyze", "synthesize", "cite"],
        weight: 10,
        prompts: &[
            "Summarise recent work on retrieval-augmented generation (ref {n})",
            "What is known about Zürich's tram ridership since {n}?",
            "Compare vector databases for a {n}-document corpus",
        ],
    },
    Pipeline {
        id: "translation-qa",
        name: "Traducción y QA – Multilingüe",
        versions: &["0.3.0"],
        steps: &["segment", "translate", "back_translate"],
        weight: 9,
        prompts: &[
            "Translate release notes v{n} to German",
            "Traducir el manual {n} al portugués",
            "naïve café résumé — «{n}»",
            "Übersetze Ticket {n} ins Englische 🚀",
        ],
    },
    Pipeline {
        id: "hitl-approval",
        name: "HITL Approval Flow",
        versions: &["1.0.0"],
        steps: &["draft", "ask_human", "apply_feedback", "approve", "finalize"],
        weight: 10,
        prompts: &[
            "Draft a refund approval for order {n}",
            "Prepare the contract amendment {n} for sign-off",
            "Write the incident notice {n} for customers",
        ],
    },
];

const MODELS: [&str; 5] = [
    "gpt-4o-mini",
    "gpt-4o",
    "claude-3-5-sonnet",
    "llama3-70b",
    "mistral-large",
];

const WORDS: [&str; 32] = [
    "the",
    "invoice",
    "customer",
    "agent",
    "pipeline",
    "total",
    "amount",
    "due",
    "order",
    "shipment",
    "refund",
    "policy",
    "review",
    "model",
    "context",
    "step",
    "result",
    "query",
    "summary",
    "source",
    "café",
    "naïve",
    "Straße",
    "données",
    "análisis",
    "報告",
    "проверка",
    "δεδομένα",
    "latency",
    "token",
    "budget",
    "retry",
];

/// Makes `count` demo runs as of `now`, deterministically: the same arguments always give the same runs, and a
/// longer demo starts with the runs of a shorter one (run ids depend only on `seed` and position).
///
/// Every run has both timestamps set (`created_at` within the [`WINDOW_DAYS`] days before `now`, `updated_at`
/// between it and `now`), whole microseconds, and passes [`Store::save_state`]'s validation.
pub fn generate(count: usize, seed: u64, now: DateTime<Utc>) -> Vec<WorkflowState> {
    Generator::new(seed, now).take(count).collect()
}

/// The endless sequence of demo runs for one seed and instant; [`generate`] takes from it, [`write_demo`]
/// streams it chunk by chunk so a large demo never sits in memory at once.
struct Generator {
    rng: Rng,
    weights: Vec<u32>,
    index: usize,
    now: DateTime<Utc>,
}

impl Generator {
    fn new(seed: u64, now: DateTime<Utc>) -> Self {
        Generator {
            rng: Rng::new(seed),
            weights: PIPELINES.iter().map(|p| p.weight).collect(),
            index: 0,
            now: now.trunc_subsecs(6),
        }
    }
}

impl Iterator for Generator {
    type Item = WorkflowState;

    fn next(&mut self) -> Option<WorkflowState> {
        // The first five runs take the five statuses in turn, so even a tiny demo shows each of them.
        let forced = Status::KNOWN.get(self.index).cloned();
        self.index += 1;
        Some(generate_one(&mut self.rng, &self.weights, forced, self.now))
    }
}

fn pick_status(rng: &mut Rng) -> Status {
    // completed 66 %, failed 15 %, running 8 %, paused 5 %, cancelled 6 %
    match rng.weighted(&[66, 15, 8, 5, 6]) {
        0 => Status::Completed,
        1 => Status::Failed,
        2 => Status::Running,
        3 => Status::Paused,
        _ => Status::Cancelled,
    }
}

fn micros(us: i64) -> Duration {
    Duration::microseconds(us)
}

const HOUR_US: i64 = 3_600_000_000;
const WINDOW_US: i64 = WINDOW_DAYS * 24 * HOUR_US;

/// An age in microseconds, in `(0, window]`, denser near zero (the square of a uniform value: about 13 % of
/// runs in the last day and 2.6 % in the last hour of a 60-day window).
fn recent_biased_age(rng: &mut Rng) -> i64 {
    let u = rng.unit();
    ((u * u * WINDOW_US as f64) as i64).clamp(1, WINDOW_US - 1)
}

fn generate_one(rng: &mut Rng, weights: &[u32], forced: Option<Status>, now: DateTime<Utc>) -> WorkflowState {
    let pipeline = &PIPELINES[rng.weighted(weights)];
    let status = forced.unwrap_or_else(|| pick_status(rng));
    let run_id = format!("run_{}", rng.hex(32));
    let total = pipeline.steps.len() as i64;
    let stuck = matches!(status, Status::Running | Status::Paused) && rng.chance(0.3);

    // When the run started and when it was last touched.
    let (created, updated) = match status {
        Status::Running if !stuck => {
            // Live runs started recently and were updated moments ago.
            let age = rng.range(5_000_000, 2 * HOUR_US);
            let since_update = rng.range(200_000, 90_000_000).min(age - 1);
            (now - micros(age), Some(now - micros(since_update)))
        }
        Status::Paused if !stuck => {
            // Waiting for a human since earlier today.
            let age = rng.range(10 * 60_000_000, 8 * HOUR_US);
            let idle = rng.range(60_000_000, age - 1);
            (now - micros(age), Some(now - micros(idle)))
        }
        Status::Running | Status::Paused => {
            // Stuck: no update for six hours to several days.
            let idle = rng.range(6 * HOUR_US, 7 * 24 * HOUR_US);
            let busy = rng.range(2_000_000, 20 * 60_000_000);
            let age = (idle + busy).min(WINDOW_US - 1);
            (now - micros(age), Some(now - micros(idle)))
        }
        // Finished runs: the last update follows from the work done, filled in below.
        _ => (now - micros(recent_biased_age(rng)), None),
    };

    // How far the run got, and which step failed.
    let current = match status {
        Status::Completed => total,
        Status::Failed | Status::Cancelled => rng.range(0, total - 1),
        Status::Running => rng.range(0, total - 1),
        _ => rng.range(1, total - 1),
    };
    let prompt = rng
        .pick(pipeline.prompts)
        .replace("{n}", &rng.range(100, 99_999).to_string());
    let error_message = match status {
        Status::Failed => Some(error_for(rng, pipeline, pipeline.steps[current as usize])),
        Status::Cancelled => match rng.weighted(&[6, 3, 2]) {
            0 => Some("Cancelled by user".to_string()),
            1 => Some("Run cancelled: shutdown requested (SIGTERM)".to_string()),
            _ => None,
        },
        _ => None,
    };

    let history = step_history(rng, pipeline, current, &status, error_message.as_deref());
    let spent_s: f64 = history
        .iter()
        .filter_map(|s| s.get("latency_s").and_then(Value::as_f64))
        .sum();
    let last_step_output = if (current == 0 && status != Status::Completed) || rng.chance(0.05) {
        None
    } else {
        Some(last_output(rng, pipeline, current))
    };
    let execution_time_ms = if rng.chance(0.03) {
        None
    } else {
        Some((spent_s * 1000.0) as i64 + rng.range(20, 900))
    };
    let updated = updated.unwrap_or_else(|| {
        // The steps' time plus the runner's overhead; a run that waited for a person took hours.
        let busy = (spent_s * 1e6) as i64 + rng.range(50_000, 3_000_000);
        let waited = if pipeline.id == "hitl-approval" && current >= 2 {
            rng.range(60_000_000, 6 * HOUR_US)
        } else {
            0
        };
        created + micros(busy + waited)
    });
    let memory_usage_mb = if rng.chance(0.04) {
        None
    } else if rng.chance(0.05) {
        Some(rng.decimal(400.0, 1800.0, 3))
    } else {
        Some(rng.decimal(8.0, 220.0, 3))
    };

    let context = context_for(rng, pipeline, &run_id, &prompt, current, created);

    WorkflowState {
        run_id,
        pipeline_id: pipeline.id.to_string(),
        pipeline_name: pipeline.name.to_string(),
        pipeline_version: rng.pick(pipeline.versions).to_string(),
        current_step_index: current,
        pipeline_context: context,
        last_step_output,
        step_history: Value::Array(history),
        status,
        created_at: Some(created),
        updated_at: Some(updated.max(created).min(now)),
        total_steps: total,
        error_message,
        execution_time_ms,
        memory_usage_mb,
        extras: Default::default(),
    }
}

/// A recurring error with varying details, as real agent runs produce them.
fn error_for(rng: &mut Rng, pipeline: &Pipeline, step: &str) -> String {
    let specific: Option<String> = match pipeline.id {
        "invoice-extraction" if rng.chance(0.35) => Some(
            rng.pick(&[
                "ContextInheritanceError: Missing required fields: invoice_number, currency",
                "ContextInheritanceError: Missing required fields: supplier_vat_id",
            ])
            .to_string(),
        ),
        "invoice-extraction" if rng.chance(0.4) => Some(format!(
            "Step '{step}' failed: ValidationError: field '{}' expected number, got '{}'",
            rng.pick(&["total", "tax_amount", "line_items[3].quantity", "subtotal"]),
            rng.pick(&["N/A", "", "twelve", "1.234,56", "—"]),
        )),
        "sql-agent" if step == "execute" && rng.chance(0.6) => Some(format!(
            "Step 'execute' failed: OperationalError: no such column: {}",
            rng.pick(&[
                "orders.shipped_on",
                "customer.region_id",
                "tickets.closed",
                "o.totl"
            ])
        )),
        "hitl-approval" if step == "ask_human" && rng.chance(0.6) => Some(format!(
            "Step 'ask_human' failed: HumanInputTimeout: no answer within {}h",
            rng.pick(&[4, 8, 24, 48])
        )),
        _ => None,
    };
    let base = specific.unwrap_or_else(|| match rng.weighted(&[30, 20, 12, 12, 10, 8, 8]) {
        0 => format!(
            "Step '{step}' failed: RateLimitError: 429 Too Many Requests (retry after {}s)",
            rng.range(2, 60)
        ),
        1 => format!(
            "Step '{step}' failed: TimeoutError: agent call exceeded {}s",
            rng.pick(&[30, 60, 120])
        ),
        2 => format!(
            "UsageLimitExceededError: Cost limit of ${} exceeded",
            rng.pick(&["0.50", "1.00", "2.50", "5.00"])
        ),
        3 => format!(
            "Step '{step}' failed: ValidationError: {} validation error(s) for {}",
            rng.range(1, 6),
            rng.pick(&[
                "ReplyDraft",
                "InvoiceModel",
                "SQLQuery",
                "ReviewComment",
                "Summary"
            ])
        ),
        4 => format!("Step '{step}' failed: ConnectionError: Connection reset by peer"),
        5 => format!(
            "Step '{step}' failed: JSONDecodeError: Expecting ',' delimiter: line {} column {} (char {})",
            rng.range(1, 40),
            rng.range(1, 120),
            rng.range(10, 4000)
        ),
        _ => format!(
            "UsageLimitExceededError: Token limit of {} exceeded",
            rng.pick(&[4096, 8192, 16000, 32000])
        ),
    });
    if rng.chance(0.08) {
        // Some errors carry the traceback the worker logged.
        let (runner_line, step_line) = (rng.range(200, 900), rng.range(10, 300));
        [
            base.as_str(),
            "Traceback (most recent call last):",
            &format!("  File \"/app/flujo/application/runner.py\", line {runner_line}, in run_async"),
            "    result = await self._execute_steps(start_idx, data, context)",
            &format!("  File \"/app/flujo/steps/{step}.py\", line {step_line}, in __call__"),
            "    raise err",
            base.as_str(),
        ]
        .join("\n")
    } else {
        base
    }
}

/// The steps run so far, shaped like flujo's `StepResult`s.
fn step_history(
    rng: &mut Rng,
    pipeline: &Pipeline,
    current: i64,
    status: &Status,
    error: Option<&str>,
) -> Vec<Value> {
    let mut history = Vec::new();
    for (i, name) in pipeline.steps.iter().enumerate() {
        let i = i as i64;
        if i > current || (i == current && *status != Status::Failed) {
            break;
        }
        let failed = i == current && *status == Status::Failed;
        let latency = if failed {
            rng.decimal(0.1, 30.0, 3)
        } else {
            rng.decimal(0.05, 12.0, 3)
        };
        let tokens = if failed { 0 } else { rng.range(50, 4000) };
        history.push(json!({
            "name": name,
            "output": if failed { Value::Null } else { Value::String(format!("{name} ok")) },
            "success": !failed,
            "attempts": if failed { rng.range(1, 3) } else if rng.chance(0.1) { 2 } else { 1 },
            "latency_s": latency,
            "token_counts": tokens,
            "cost_usd": if failed { 0.0 } else { rng.decimal(0.0005, 0.04, 5) },
            "feedback": if failed { error.map(Value::from).unwrap_or(Value::Null) } else { Value::Null },
            "branch_context": Value::Null,
            "metadata_": Value::Null,
        }));
    }
    history
}

fn last_output(rng: &mut Rng, pipeline: &Pipeline, current: i64) -> Value {
    let step = pipeline.steps[(current.max(1) - 1) as usize];
    match rng.range(0, 3) {
        0 => Value::String(format!("{step} done")),
        1 => json!({ "step": step, "confidence": rng.decimal(0.4, 0.99, 3) }),
        2 => {
            json!({ "reply": format!("{} {}", rng.pick(&WORDS), rng.pick(&WORDS)), "tokens": rng.range(10, 900) })
        }
        _ => json!([step, rng.range(0, 100)]),
    }
}

fn sentence(rng: &mut Rng, words: usize) -> String {
    let mut s = String::new();
    for i in 0..words {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(rng.pick(&WORDS));
    }
    s.push('.');
    s
}

/// The pipeline context: flujo's standard keys plus what each pipeline keeps, about 1–3 KB, and 50–100 KB for
/// about one run in a hundred (a document pasted into the context).
fn context_for(
    rng: &mut Rng,
    pipeline: &Pipeline,
    run_id: &str,
    prompt: &str,
    current: i64,
    created: DateTime<Utc>,
) -> Value {
    let mut ctx = Map::new();
    ctx.insert("run_id".into(), run_id.into());
    ctx.insert("initial_prompt".into(), prompt.into());
    ctx.insert(
        "scratchpad".into(),
        json!({
            "attempt": rng.range(1, 3),
            "model": rng.pick(&MODELS),
            "temperature": rng.decimal(0.0, 1.0, 2),
            "notes": sentence(rng, 12),
        }),
    );
    const ANSWERS: [&str; 4] = [
        "yes",
        "no, shorten it",
        "approve with the changes",
        "ça marche 👍",
    ];
    let mut hitl = Vec::new();
    if pipeline.id == "hitl-approval" && current >= 2 {
        for k in 0..rng.range(1, 3) {
            hitl.push(json!({
                "message_to_human": "Approve the draft?",
                "human_response": rng.pick(&ANSWERS),
                "timestamp": crate::time::format_timestamp(&(created + Duration::seconds(60 * (k + 1)))),
            }));
        }
    }
    ctx.insert("hitl_history".into(), Value::Array(hitl));
    let commands: Vec<Value> = pipeline
        .steps
        .iter()
        .take(current.max(0) as usize)
        .map(|s| json!({ "type": "run_step", "step": s, "ok": true }))
        .collect();
    ctx.insert("command_log".into(), Value::Array(commands));

    match pipeline.id {
        "customer-support-triage" => {
            let customer = json!({
                "tier": rng.pick(&["free", "pro", "enterprise"]),
                "locale": rng.pick(&["en-US", "fr-FR", "es-ES", "ar-EG", "ja-JP"]),
            });
            let ticket = json!({
                "id": format!("T-{}", rng.range(10_000, 99_999)),
                "channel": rng.pick(&["email", "chat", "phone"]),
                "priority": rng.pick(&["low", "normal", "high", "urgent"]),
                "customer": customer,
            });
            ctx.insert("ticket".into(), ticket);
            let hits: Vec<Value> = (0..rng.range(2, 6))
                .map(|_| {
                    json!({
                        "article": format!("KB-{}", rng.range(100, 999)),
                        "score": rng.decimal(0.3, 0.99, 4),
                        "snippet": sentence(rng, 14),
                    })
                })
                .collect();
            ctx.insert("kb_hits".into(), Value::Array(hits));
        }
        "invoice-extraction" => {
            let lines: Vec<Value> = (0..rng.range(2, 9))
                .map(|i| {
                    json!({
                        "line": i + 1,
                        "description": sentence(rng, 4),
                        "quantity": rng.range(1, 40),
                        "unit_price": rng.decimal(1.0, 500.0, 2),
                    })
                })
                .collect();
            let suppliers = [
                "Müller GmbH",
                "Acme Corp",
                "Société Générale de Café",
                "北京贸易有限公司",
            ];
            let invoice = json!({
                "invoice_number": format!("INV-{}", rng.range(100_000, 999_999)),
                "currency": rng.pick(&["EUR", "USD", "GBP", "CHF"]),
                "supplier": rng.pick(&suppliers),
                "line_items": lines,
            });
            ctx.insert("invoice".into(), invoice);
        }
        "code-review-bot" => {
            let files: Vec<Value> = (0..rng.range(1, 8))
                .map(|_| {
                    let area = rng.pick(&["billing", "auth", "api", "store"]);
                    let file = rng.pick(&["mod", "handlers", "model", "query"]);
                    json!({
                        "path": format!("src/{area}/{file}.rs"),
                        "additions": rng.range(1, 400),
                        "deletions": rng.range(0, 200),
                    })
                })
                .collect();
            let pr = json!({ "number": rng.range(100, 30_000), "files": files });
            ctx.insert("pull_request".into(), pr);
        }
        "sql-agent" => {
            let sql = format!(
                "SELECT region, count(*) FROM orders WHERE shipped_at > delivered_at - interval '{} days' \
                 GROUP BY region",
                rng.range(1, 30)
            );
            ctx.insert("sql".into(), Value::String(sql));
            ctx.insert(
                "schema_tables".into(),
                json!(["orders", "customers", "tickets", "regions", "invoices"]),
            );
        }
        "research-summarizer" => {
            let sources: Vec<Value> = (0..rng.range(3, 10))
                .map(|_| {
                    json!({
                        "url": format!("https://example.org/paper/{}", rng.range(100_000, 999_999)),
                        "score": rng.decimal(0.2, 0.99, 4),
                        "title": sentence(rng, 6),
                    })
                })
                .collect();
            ctx.insert("sources".into(), Value::Array(sources));
        }
        "translation-qa" => {
            let segments: Vec<Value> = (0..rng.range(2, 8))
                .map(|_| {
                    json!({
                        "source": sentence(rng, 8),
                        "target": sentence(rng, 8),
                        "bleu": rng.decimal(0.1, 0.95, 3),
                    })
                })
                .collect();
            ctx.insert("segments".into(), Value::Array(segments));
            ctx.insert(
                "target_language".into(),
                rng.pick(&["de", "pt-BR", "ja", "fr"]).to_string().into(),
            );
        }
        _ => {
            ctx.insert("draft".into(), sentence(rng, 40).into());
        }
    }

    // Bring the context to one to three kilobytes with the notes agents keep adding.
    let target = rng.range(1_000, 3_000) as usize;
    let mut notes = Vec::new();
    let mut size = serde_json::to_string(&ctx).map(|s| s.len()).unwrap_or(0);
    while size < target {
        let note = sentence(rng, 10);
        size += note.len() + 4;
        notes.push(Value::String(note));
    }
    ctx.insert("memory".into(), Value::Array(notes));

    if rng.chance(0.01) {
        // A whole document pasted into the context: the size guards of every view must cope.
        let target = rng.range(50_000, 100_000) as usize;
        let mut doc = String::with_capacity(target + 200);
        while doc.len() < target {
            doc.push_str(&sentence(rng, 16));
            doc.push(if rng.chance(0.2) { '\n' } else { ' ' });
        }
        ctx.insert("document_text".into(), doc.into());
    }
    Value::Object(ctx)
}

/// Writes `count` demo runs (see [`generate`]) as of the store's clock, [`CHUNK`] runs per transaction, and
/// returns how many were written.
///
/// It never replaces a run: when the table already holds runs, the ids of each chunk are looked up before the
/// chunk is written, and the call stops with an error at the first one that exists. Ids depend only on the seed,
/// so demo data written before with the same seed is found in the first chunk, before anything is written;
/// another `seed` gives other ids.
///
/// # Errors
/// [`StoreError::Conflict`] when a generated run id already exists; the errors of [`Store::save_many`]. Chunks
/// written before a failure stay written.
pub async fn write_demo(store: &Store, count: usize, seed: u64) -> Result<usize> {
    let occupied = !store
        .list_workflows(&ListQuery {
            limit: Some(1),
            ..Default::default()
        })
        .await?
        .runs
        .is_empty();
    let mut runs = Generator::new(seed, store.now()).take(count);
    let mut written = 0;
    loop {
        let chunk: Vec<WorkflowState> = runs.by_ref().take(CHUNK).collect();
        if chunk.is_empty() {
            break;
        }
        if occupied {
            for run in &chunk {
                if store.load_state(&run.run_id).await?.is_some() {
                    return Err(StoreError::Conflict(format!(
                        "demo run {} already exists (demo data with seed {seed} was written before); \
                         choose another seed",
                        run.run_id
                    )));
                }
            }
        }
        store.save_many(&chunk).await?;
        written += chunk.len();
        tracing::debug!(written, count, "demo runs written");
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::collections::BTreeSet;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 14, 15, 9, 26).unwrap() + Duration::microseconds(535_897)
    }

    #[test]
    fn same_seed_same_runs_other_seed_other_runs() {
        let a = generate(300, 7, now());
        assert_eq!(
            a,
            generate(300, 7, now()),
            "a seed must always give the same runs"
        );
        let b = generate(300, 8, now());
        assert_ne!(a[0].run_id, b[0].run_id, "another seed should give other runs");
        // A longer demo starts with the same runs as a shorter one.
        assert_eq!(&generate(500, 7, now())[..300], &a[..]);
    }

    #[test]
    fn ids_are_unique() {
        let runs = generate(5_000, 1, now());
        let ids: BTreeSet<&str> = runs.iter().map(|r| r.run_id.as_str()).collect();
        assert_eq!(ids.len(), runs.len(), "run ids must be unique");
    }

    #[test]
    fn every_status_and_pipeline_is_present_with_realistic_shares() {
        assert_eq!(
            generate(5, 3, now())
                .iter()
                .map(|r| r.status.clone())
                .collect::<Vec<_>>(),
            Status::KNOWN.to_vec(),
            "even a five-run demo shows every status"
        );
        let runs = generate(4_000, 3, now());
        for status in Status::KNOWN {
            assert!(runs.iter().any(|r| r.status == status), "no {status} run");
        }
        let share = |s: Status| runs.iter().filter(|r| r.status == s).count() as f64 / runs.len() as f64;
        assert!(share(Status::Completed) > 0.55, "mostly completed");
        let failed = share(Status::Failed);
        assert!((0.11..0.19).contains(&failed), "about 15% failed, got {failed}");
        let pipelines: BTreeSet<&str> = runs.iter().map(|r| r.pipeline_id.as_str()).collect();
        assert_eq!(pipelines.len(), 7, "seven pipelines: {pipelines:?}");
        for run in runs.iter().filter(|r| r.status == Status::Failed) {
            assert!(run.error_message.is_some(), "a failed run says why");
        }
        let messages: BTreeSet<&str> = runs.iter().filter_map(|r| r.error_message.as_deref()).collect();
        assert!(messages.len() > 50, "error details vary");
        assert!(messages.iter().any(|m| m.contains("RateLimitError: 429")));
        assert!(
            runs.iter().any(|r| r.pipeline_name.contains('→')),
            "some unicode names"
        );
    }

    #[test]
    fn timestamps_stay_in_the_window_and_in_order() {
        let now = now();
        let start = now - Duration::days(WINDOW_DAYS);
        let runs = generate(4_000, 11, now);
        let mut last_day = 0;
        let mut last_hour = 0;
        for r in &runs {
            let (c, u) = (r.created_at.unwrap(), r.updated_at.unwrap());
            assert!(
                c > start && c <= now,
                "{} created at {c}, outside the window",
                r.run_id
            );
            assert!(u >= c && u <= now, "{} updated at {u}, created at {c}", r.run_id);
            assert_eq!(c.timestamp_subsec_nanos() % 1000, 0, "whole microseconds");
            last_day += usize::from(c > now - Duration::hours(24));
            last_hour += usize::from(c > now - Duration::hours(1));
        }
        assert!(
            last_day > 200 && last_day < 1_200,
            "denser recently: {last_day} in 24 h"
        );
        assert!(last_hour > 10, "some in the last hour: {last_hour}");
        let stuck = runs
            .iter()
            .filter(|r| matches!(r.status, Status::Running | Status::Paused))
            .filter(|r| r.updated_at.unwrap() < now - Duration::hours(6))
            .count();
        assert!(stuck > 5, "a few stuck runs: {stuck}");
    }

    #[test]
    fn sizes_and_optional_figures_are_realistic() {
        let runs = generate(2_000, 5, now());
        let sizes: Vec<usize> = runs
            .iter()
            .map(|r| serde_json::to_string(&r.pipeline_context).unwrap().len())
            .collect();
        let small = sizes.iter().filter(|s| (1_000..=4_000).contains(*s)).count();
        assert!(small > 1_900, "contexts are mostly 1-3 KB: {small} of 2000");
        assert!(sizes.iter().any(|s| *s >= 50_000), "a few large contexts");
        assert!(sizes.iter().all(|s| *s <= 110_000));
        assert!(runs.iter().any(|r| r.execution_time_ms.is_none()));
        assert!(runs.iter().filter(|r| r.execution_time_ms.is_some()).count() > 1_800);
        assert!(runs.iter().any(|r| r.memory_usage_mb.is_none()));
        assert!(runs.iter().all(|r| r.step_history.is_array()));
    }

    #[tokio::test]
    async fn every_row_saves_and_reads_back_and_write_demo_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let clock = crate::FixedClock::new(now());
        let store = Store::open_with(
            dir.path().join("demo.db"),
            crate::StoreOptions {
                clock: std::sync::Arc::new(clock),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        for run in generate(300, 21, now()) {
            store
                .save_state(&run)
                .await
                .unwrap_or_else(|e| panic!("{} should save: {e}", run.run_id));
            let back = store
                .load_state(&run.run_id)
                .await
                .unwrap()
                .expect("saved run reads back");
            assert_eq!(back, run, "run {} reads back unchanged", run.run_id);
        }
        // write_demo with another seed adds; with the same seed again it refuses and writes nothing.
        assert_eq!(write_demo(&store, 1_200, 22).await.unwrap(), 1_200);
        assert_eq!(store.get_workflow_stats().await.unwrap().total_workflows, 1_500);
        let err = write_demo(&store, 10, 22).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err}");
        assert_eq!(store.get_workflow_stats().await.unwrap().total_workflows, 1_500);
    }

    #[tokio::test]
    async fn after_close_every_demo_run_is_in_the_database_file() {
        // A demo database is a file people copy; nothing may be left behind in the -wal file.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("demo.db");
        let store = Store::open(&path).await.unwrap();
        assert_eq!(write_demo(&store, 50, 1).await.unwrap(), 50);
        store.close().await;
        let wal = std::fs::metadata(dir.path().join("demo.db-wal"))
            .map(|m| m.len())
            .unwrap_or(0);
        assert_eq!(wal, 0, "close() returns after SQLite checkpointed the WAL");
        assert!(std::fs::metadata(&path).unwrap().len() > 50 * 1000);
    }
}
