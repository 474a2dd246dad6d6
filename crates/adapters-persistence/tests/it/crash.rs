//! Crash safety: a writer process killed with SIGKILL in the middle of its appends leaves an
//! SQLite file that opens cleanly, with every conversation made of whole turns and totals that
//! match its messages.
//!
//! The writer is this test binary itself, started with [`WRITER_DB`] set so that
//! [`writer_process`] runs the write loop (without it, that test returns at once).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use exllm_adapters_persistence::{SqliteStore, Stores, open};
use exllm_core::{Conversation, ConversationFilter};

use crate::suite::{cost, dec, tool_turn, turn_tag, usage};

/// Set in the child: the database file the writer appends to.
const WRITER_DB: &str = "EXLLM_TEST_CRASH_WRITER_DB";
/// Set in the child: which round of the test this is, to keep turn tags unique.
const WRITER_ROUND: &str = "EXLLM_TEST_CRASH_WRITER_ROUND";
/// Conversations the writer appends to, and writers per conversation.
const CONVERSATIONS: usize = 3;
const WRITERS_PER_CONVERSATION: usize = 2;
/// Kill rounds, and committed appends to see reported before each kill.
const ROUNDS: usize = 3;
const APPENDS_BEFORE_KILL: usize = 60;

/// The writer: appends tool turns to every conversation from several tasks, forever, printing
/// `committed <conversation> <tag>` after each append returns.
#[test]
fn writer_process() {
    let Ok(path) = std::env::var(WRITER_DB) else {
        return;
    };
    let round = std::env::var(WRITER_ROUND).unwrap_or_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let stores = open(&format!("sqlite://{path}")).await.unwrap();
        let mut ids: Vec<String> = stores
            .conversations
            .list(&ConversationFilter::all())
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.id)
            .collect();
        while ids.len() < CONVERSATIONS {
            let id = stores
                .conversations
                .create(Conversation::new("", "mock", "crash"))
                .await
                .unwrap();
            ids.push(id);
        }
        let mut tasks = Vec::new();
        for (c, id) in ids.into_iter().enumerate() {
            for w in 0..WRITERS_PER_CONVERSATION {
                let stores = stores.clone();
                let id = id.clone();
                let writer = format!("r{round}c{c}w{w}");
                tasks.push(tokio::spawn(async move {
                    for n in 0.. {
                        let tag = format!("{writer}-{n}");
                        stores
                            .conversations
                            .append(&id, tool_turn(&tag), usage(1), Some(cost("0.001")))
                            .await
                            .unwrap();
                        println!("committed {id} {tag}");
                    }
                }));
            }
        }
        for task in tasks {
            task.await.unwrap();
        }
    });
}

#[test]
fn killed_writer_leaves_whole_turns() {
    let dir = crate::TempDir::fresh();
    let path = dir.path().join("crash.db");
    // Per conversation, the tags the writer reported committed before it died.
    let mut reported: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for round in 0..ROUNDS {
        for (id, tag) in run_and_kill_writer(&path, round) {
            reported.entry(id).or_default().insert(tag);
        }
        check_database(&path, &reported);
    }
}

/// Starts the writer, waits until it has reported some appends, kills it with SIGKILL, and
/// returns what it reported.
fn run_and_kill_writer(path: &Path, round: usize) -> Vec<(String, String)> {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut child = Command::new(exe)
        .args([
            "crash::writer_process",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(WRITER_DB, path)
        .env(WRITER_ROUND, round.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the writer process");
    let stdout = child.stdout.take().expect("the writer's stdout");
    let mut committed = Vec::new();
    // The pipe stays open until after the kill, so that the writer dies of SIGKILL and never
    // of a closed stdout.
    let mut lines = BufReader::new(stdout).lines();
    for line in lines.by_ref() {
        let line = line.expect("read the writer's output");
        if let Some(rest) = line.strip_prefix("committed ") {
            let (id, tag) = rest.split_once(' ').expect("`committed <id> <tag>`");
            committed.push((id.to_owned(), tag.to_owned()));
            if committed.len() >= APPENDS_BEFORE_KILL {
                break;
            }
        }
    }
    // `kill` is SIGKILL on Unix: no destructor, no rollback, no flush runs in the writer,
    // which is still appending from several tasks right now.
    let _ = child.kill();
    let status = child.wait().expect("reap the writer");
    drop(lines);
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            status.signal(),
            Some(9),
            "the writer died of SIGKILL: {status}"
        );
    }
    assert!(
        committed.len() >= APPENDS_BEFORE_KILL,
        "the writer stopped after {} appends ({status}); see its output above",
        committed.len()
    );
    committed
}

/// Opens the database as a fresh process would and checks every conversation.
fn check_database(path: &Path, reported: &BTreeMap<String, BTreeSet<String>>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = SqliteStore::open(path)
            .await
            .expect("the database opens cleanly after the crash");
        let integrity: String = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(integrity, "ok");
        let stores = Stores::from_store(std::sync::Arc::new(store));
        let conversations = stores
            .conversations
            .list(&ConversationFilter::all())
            .await
            .unwrap();
        assert_eq!(conversations.len(), CONVERSATIONS);
        for conversation in conversations {
            let id = &conversation.id;
            assert_eq!(
                conversation.messages.len() % 4,
                0,
                "conversation {id} holds a partial turn"
            );
            let tags: Vec<String> = conversation.messages.chunks(4).map(turn_tag).collect();
            let unique: BTreeSet<&String> = tags.iter().collect();
            assert_eq!(unique.len(), tags.len(), "a turn landed twice in {id}");
            // Each writer's turns are in its own order, without gaps.
            let mut next: BTreeMap<&str, u64> = BTreeMap::new();
            for tag in &tags {
                let (writer, n) = tag.rsplit_once('-').unwrap();
                let n: u64 = n.parse().unwrap();
                let expected = next.entry(writer).or_default();
                assert_eq!(n, *expected, "writer {writer}'s turns out of order in {id}");
                *expected += 1;
            }
            // Totals match the messages exactly.
            let turns = tags.len() as u64;
            assert_eq!(conversation.usage, usage(turns), "usage of {id}");
            let total = conversation.cost.map(|c| c.total_usd).unwrap_or_default();
            assert_eq!(
                total,
                dec("0.001") * exllm_core::Decimal::from(turns),
                "cost of {id}"
            );
            // Nothing the writer saw committed was lost.
            for tag in reported.get(id).into_iter().flatten() {
                assert!(
                    unique.contains(tag),
                    "committed turn {tag} of {id} is missing"
                );
            }
        }
    });
}
