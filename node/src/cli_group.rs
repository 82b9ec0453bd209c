//! `weir group list|describe|reset-offsets|delete` and `weir consume --group`.

use crate::cli::{Conn, ConsumeArgs, finish, record_line, runtime};
use clap::Subcommand;
use std::io::Write;
use std::process::ExitCode;
use weir_net::client::{Admin, ClientError, GroupConfig, GroupConsumer, GroupEvent, OffsetReset, Seek};
use weir_net::groups::{GroupInfo, OffsetCommitEntry};

#[derive(Debug, Subcommand)]
pub enum GroupCmd {
    /// List the consumer groups
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show a group: its members, their partitions, and per partition the committed offset,
    /// the log end and the lag
    Describe {
        group: String,
        #[arg(long)]
        json: bool,
    },
    /// Set a group's committed offsets for a topic; refused while the group has members
    ResetOffsets {
        group: String,
        #[arg(long)]
        topic: String,
        #[arg(long, group = "to")]
        to_earliest: bool,
        #[arg(long, group = "to")]
        to_latest: bool,
        #[arg(long, group = "to")]
        to_offset: Option<u64>,
        /// The first offset at or after this time: YYYY-MM-DDTHH:MM:SS[.mmm][Z] in UTC, or
        /// milliseconds since the epoch
        #[arg(long, group = "to", value_parser = crate::cli_units::parse_datetime_ms)]
        to_datetime: Option<i64>,
    },
    /// Delete a group without members, with its committed offsets
    Delete { group: String },
}

pub fn group(conn: &Conn, cmd: GroupCmd) -> ExitCode {
    finish(runtime().block_on(async {
        let target = conn.target()?;
        let mut admin = Admin::connect(&target).await?;
        match cmd {
            GroupCmd::List { json } => {
                let groups = admin.list_groups().await?;
                if json {
                    let v: Vec<_> = groups
                        .iter()
                        .map(
                            |g| serde_json::json!({"group": g.group, "state": g.state, "members": g.members}),
                        )
                        .collect();
                    println!("{}", serde_json::Value::Array(v));
                } else {
                    println!("{:<30} {:>10} {:>8}", "GROUP", "STATE", "MEMBERS");
                    for g in groups {
                        println!("{:<30} {:>10} {:>8}", g.group, g.state, g.members);
                    }
                }
            }
            GroupCmd::Describe { group, json } => describe(&mut admin, &group, json).await?,
            GroupCmd::ResetOffsets { group, topic, to_earliest, to_latest, to_offset, to_datetime } => {
                let seek = match (to_earliest, to_latest, to_offset, to_datetime) {
                    (true, ..) => Seek::Earliest,
                    (_, true, ..) => Seek::Latest,
                    (_, _, Some(o), _) => Seek::Offset(o),
                    (_, _, _, Some(t)) => Seek::Timestamp(t),
                    _ => {
                        let m = "say where: --to-earliest, --to-latest, --to-offset or --to-datetime";
                        return Err(ClientError::InvalidArgument(m.into()));
                    }
                };
                let offsets = reset_targets(&mut admin, &target, &topic, seek).await?;
                let n = offsets.len();
                admin.reset_offsets(&group, offsets).await?;
                println!("reset {n} partitions of {topic} for group {group}");
            }
            GroupCmd::Delete { group } => {
                admin.delete_group(&group).await?;
                println!("deleted group {group}");
            }
        }
        Ok(())
    }))
}

/// Each partition of `topic` with the offset `seek` finds in it.
async fn reset_targets(
    admin: &mut Admin,
    target: &weir_net::client::Target,
    topic: &str,
    seek: Seek,
) -> Result<Vec<OffsetCommitEntry>, ClientError> {
    let info = admin.describe_topic(topic).await?;
    let mut consumer = weir_net::client::Consumer::connect(target, Default::default()).await?;
    let mut out = Vec::new();
    for p in &info.partitions {
        consumer.assign(topic, p.partition, seek).await?;
        let offset = consumer.position(topic, p.partition).expect("assigned above");
        out.push(OffsetCommitEntry {
            topic: topic.into(),
            partition: p.partition,
            offset,
            metadata: String::new(),
        });
    }
    Ok(out)
}

/// Per member its partitions; per partition the committed offset, log end and lag.
async fn describe(admin: &mut Admin, group: &str, json: bool) -> Result<(), ClientError> {
    let info = admin.describe_group(group).await?;
    let committed = admin.committed_offsets(group, vec![]).await?;
    let mut rows = Vec::new();
    let topics: std::collections::BTreeSet<&str> = committed.iter().map(|c| c.topic.as_str()).collect();
    let mut ends = std::collections::BTreeMap::new();
    for topic in topics {
        for p in admin.describe_topic(topic).await?.partitions {
            let end = p.replication.as_ref().map_or(p.log_end, |r| r.high_watermark);
            ends.insert((topic.to_owned(), p.partition), end);
        }
    }
    for c in &committed {
        let end = ends.get(&(c.topic.clone(), c.partition)).copied();
        let owner = owner_of(&info, &c.topic, c.partition);
        let lag = match (c.offset, end) {
            (Some(o), Some(e)) => Some(e.saturating_sub(o)),
            _ => None,
        };
        rows.push((c.topic.clone(), c.partition, c.offset, end, lag, owner));
    }
    if json {
        let partitions: Vec<_> = rows
            .iter()
            .map(|(t, p, o, e, l, m)| {
                serde_json::json!({"topic": t, "partition": p, "committed": o, "log_end": e, "lag": l, "member": m})
            })
            .collect();
        let members: Vec<_> = info
            .members
            .iter()
            .map(|m| {
                let assigned: Vec<_> = m
                    .assignment
                    .iter()
                    .map(|a| serde_json::json!({"topic": a.topic, "partitions": a.partitions}))
                    .collect();
                serde_json::json!({"member_id": m.member_id, "instance_id": m.instance_id, "member_epoch": m.member_epoch, "topics": m.topics, "assignment": assigned})
            })
            .collect();
        let v = serde_json::json!({"group": info.group, "state": info.state, "group_epoch": info.group_epoch, "assignor": info.assignor, "members": members, "partitions": partitions});
        println!("{v}");
        return Ok(());
    }
    println!(
        "group {}  state {}  epoch {}  assignor {}",
        info.group, info.state, info.group_epoch, info.assignor
    );
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<24} {:>9} {:>12} {:>12} {:>10}  MEMBER",
        "TOPIC", "PARTITION", "COMMITTED", "LOG_END", "LAG"
    )
    .map_err(ClientError::Io)?;
    let dash = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
    for (t, p, o, e, l, m) in rows {
        let m = m.unwrap_or_else(|| "-".into());
        writeln!(out, "{t:<24} {p:>9} {:>12} {:>12} {:>10}  {m}", dash(o), dash(e), dash(l))
            .map_err(ClientError::Io)?;
    }
    Ok(())
}

fn owner_of(info: &GroupInfo, topic: &str, partition: u32) -> Option<String> {
    info.members
        .iter()
        .find(|m| m.assignment.iter().any(|a| a.topic == topic && a.partitions.contains(&partition)))
        .map(|m| m.member_id.clone())
}

/// `weir consume T --group G`: reads as a member of the group, committing as it prints.
pub fn consume(conn: &Conn, args: ConsumeArgs) -> ExitCode {
    finish(runtime().block_on(async {
        let target = conn.target()?;
        let mut config = GroupConfig::new(args.group.as_deref().expect("called with a group"));
        config.offset_reset = if args.from_beginning { OffsetReset::Earliest } else { OffsetReset::Latest };
        // Automatic commits cover what earlier polls handed out, all of it printed; the last
        // poll's records are committed at the end as far as they were printed.
        config.instance_id = args.instance_id.clone();
        config.session_timeout_ms = args.session_timeout_ms;
        config.auto_commit_interval_ms = args.commit_interval_ms;
        // SIGTERM or SIGINT ends the loop after the current poll: what was printed is committed
        // and the consumer leaves the group (a static member leaves for a while).
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
            signal_hook::flag::register(signal, stop.clone()).map_err(ClientError::Io)?;
        }
        let mut consumer = GroupConsumer::subscribe(&target, config, &[&args.topic]).await?;
        let mut seen = 0u64;
        // The next offset after the last record printed, by partition: what is committed at the
        // end, so that a record cut off by --count or an error is not taken as processed.
        let mut printed = std::collections::BTreeMap::new();
        let r = async {
            loop {
                if args.count.is_some_and(|c| seen >= c) || stop.load(std::sync::atomic::Ordering::SeqCst) {
                    return Ok(());
                }
                let records = consumer.poll(args.timeout_ms.unwrap_or(500)).await?;
                // A partition given up or lost is another member's now: what this process printed
                // of it must not be committed over that member's commits at the end.
                for event in consumer.take_events() {
                    if let GroupEvent::Revoked(parts) | GroupEvent::Lost(parts) = event {
                        for tp in parts {
                            printed.remove(&tp);
                        }
                    }
                }
                if records.is_empty() && args.timeout_ms.is_some() {
                    return Ok(());
                }
                let mut out = std::io::stdout().lock();
                for r in &records {
                    if args.count.is_some_and(|c| seen >= c) {
                        break;
                    }
                    writeln!(out, "{}", record_line(&args, r)).map_err(ClientError::Io)?;
                    seen += 1;
                    printed.insert((r.topic.clone(), r.partition), r.offset + 1);
                }
                out.flush().map_err(ClientError::Io)?;
            }
        }
        .await;
        // Commits what was printed, and leaves: the group's other members take over at once.
        let committed = consumer.commit_offsets(printed.into_iter().collect()).await;
        let left = consumer.leave().await;
        r.and(committed).and(left)
    }))
}
