//! Topic routing benchmarks: matching one topic name against 10k, 100k and
//! 1M IoT-shaped subscriptions, inserting and removing one subscription at
//! 1M, and looking up retained topics by wildcard filter over 1M names.
//! Every scenario runs `ours` (mqtt-topic), a `naive` linear scan, and the
//! peers `quill` (quill-pubsub's trie `Registry`) and `engine`
//! (mqtt-topic-engine without its `router` feature, i.e. `TopicPatternPath`
//! matched one by one). Before the benches, memory per subscription at 1M is
//! printed (trie accounting and process RSS deltas).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkGroup, BenchmarkId, Criterion, SamplingMode, measurement::WallTime};
use mqtt_topic::{RetainedTree, SubscriptionFilter, SubscriptionTrie, TopicFilter, TopicName};
use mqtt_topic_engine::{CacheStrategy, TopicPath, TopicPatternPath};

/// Subscription counts for the matching benches.
const SIZES: [usize; 3] = [10_000, 100_000, 1_000_000];
/// The size for insert, remove, retained and memory figures.
const BIG: usize = 1_000_000;
/// Wildcard filters that many clients share (two subscribers each).
const GLOBAL_WILDCARDS: [&str; 5] = [
    "stat/+/POWER",
    "tele/#",
    "$SYS/#",
    "tele/+/SENSOR",
    "+/+/RESULT",
];

/// IoT-shaped subscriptions: per device `cmnd/<dev>/#`, `tele/<dev>/SENSOR`,
/// `stat/<dev>/POWER`, plus 1% wildcard filters (a few global ones, the rest
/// per device such as `tele/<dev>/+` or `+/<dev>/POWER`). Keys are unique.
fn subscriptions(n: usize) -> Vec<(String, u64)> {
    let wildcards = n / 100;
    let exact = n - wildcards;
    let devices = exact.div_ceil(3);
    let mut subs = Vec::with_capacity(n);
    for i in 0..exact {
        let dev = i / 3;
        let filter = match i % 3 {
            0 => format!("cmnd/dev{dev:07}/#"),
            1 => format!("tele/dev{dev:07}/SENSOR"),
            _ => format!("stat/dev{dev:07}/POWER"),
        };
        subs.push((filter, i as u64));
    }
    for j in 0..wildcards {
        let filter = if j < 2 * GLOBAL_WILDCARDS.len() {
            GLOBAL_WILDCARDS[j % GLOBAL_WILDCARDS.len()].to_owned()
        } else {
            let dev = (j * 7_919) % devices;
            match j % 3 {
                0 => format!("tele/dev{dev:07}/+"),
                1 => format!("+/dev{dev:07}/POWER"),
                _ => format!("cmnd/dev{dev:07}/+"),
            }
        };
        subs.push((filter, (exact + j) as u64));
    }
    subs
}

/// 64 three-level topics spread over the devices, each with a handful of matches.
fn topics(n: usize) -> Vec<String> {
    let devices = (n - n / 100).div_ceil(3);
    (0..64)
        .map(|k| format!("tele/dev{:07}/SENSOR", (k * 104_729) % devices))
        .collect()
}

fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn build_ours(subs: &[(String, u64)]) -> SubscriptionTrie<u64, u32> {
    let mut trie = SubscriptionTrie::new();
    for (filter, key) in subs {
        let filter = SubscriptionFilter::try_from(filter.as_str()).expect("valid bench input");
        trie.insert(&filter, *key, 1).expect("valid bench input");
    }
    trie
}

fn build_naive(subs: &[(String, u64)]) -> Vec<(TopicFilter, u64)> {
    subs.iter()
        .map(|(f, k)| {
            (
                TopicFilter::try_from(f.as_str()).expect("valid bench input"),
                *k,
            )
        })
        .collect()
}

fn build_quill(subs: &[(String, u64)]) -> quill::Registry<u64> {
    let registry = quill::Registry::new();
    for (filter, key) in subs {
        registry.subscribe(
            quill::Pattern::parse(filter).expect("valid bench input"),
            *key,
        );
    }
    registry
}

fn build_engine(subs: &[(String, u64)]) -> Vec<(TopicPatternPath, u64)> {
    subs.iter()
        .map(|(f, k)| {
            (
                TopicPatternPath::new_from_string(f.as_str(), CacheStrategy::NoCache)
                    .expect("valid bench input"),
                *k,
            )
        })
        .collect()
}

fn count_ours(trie: &SubscriptionTrie<u64, u32>, topic: &TopicName) -> usize {
    let mut count = 0;
    trie.for_each_match(topic, |m| {
        black_box(m);
        count += 1;
    });
    count
}

fn count_naive(filters: &[(TopicFilter, u64)], topic: &TopicName) -> usize {
    let mut count = 0;
    for (filter, key) in filters {
        if filter.matches(topic) {
            black_box(key);
            count += 1;
        }
    }
    count
}

fn count_engine(patterns: &[(TopicPatternPath, u64)], topic: &Arc<TopicPath>) -> usize {
    patterns
        .iter()
        .filter(|(p, _)| p.try_match(Arc::clone(topic)).is_ok())
        .count()
}

/// The environment variable that makes the binary measure one implementation's
/// memory in a fresh process (so freed memory of another cannot be reused).
const MEMORY_OF: &str = "TOPIC_BENCH_MEMORY_OF";

/// Builds one implementation at 1M and prints its process RSS growth per subscription.
fn measure_memory_of(which: &str) {
    let subs = subscriptions(BIG);
    let before = rss_bytes();
    let per_sub = |bytes: usize| bytes as f64 / BIG as f64;
    let grown = || per_sub(rss_bytes().saturating_sub(before));
    match which {
        "ours" => {
            let trie = build_ours(&subs);
            println!(
                "  ours:   {:.1} B/sub RSS growth, {:.1} B/sub counted by the trie, {} nodes",
                grown(),
                per_sub(trie.heap_bytes()),
                trie.node_count()
            );
        }
        "naive" => {
            let naive = build_naive(&subs);
            println!(
                "  naive:  {:.1} B/sub RSS growth ({} filters)",
                grown(),
                naive.len()
            );
        }
        "quill" => {
            let registry = build_quill(&subs);
            println!("  quill:  {:.1} B/sub RSS growth", grown());
            drop(black_box(registry));
        }
        _ => {
            let engine = build_engine(&subs);
            println!(
                "  engine: {:.1} B/sub RSS growth ({} patterns)",
                grown(),
                engine.len()
            );
        }
    }
}

/// Memory per subscription at 1M for each implementation, each in its own process.
fn report_memory() {
    let subs = subscriptions(BIG);
    let filter_bytes: usize = subs.iter().map(|(f, _)| f.len()).sum();
    println!(
        "memory at {BIG} subscriptions (filters average {:.1} bytes):",
        filter_bytes as f64 / BIG as f64
    );
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    for which in ["ours", "naive", "quill", "engine"] {
        let output = std::process::Command::new(&exe)
            .env(MEMORY_OF, which)
            .output();
        if let Ok(output) = output {
            print!("{}", String::from_utf8_lossy(&output.stdout));
        }
    }
}

fn configure(group: &mut BenchmarkGroup<'_, WallTime>) {
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
}

/// Slow scans: fewer, flat samples.
fn configure_slow(group: &mut BenchmarkGroup<'_, WallTime>) {
    group.sample_size(10).sampling_mode(SamplingMode::Flat);
}

fn bench_match(c: &mut Criterion) {
    let mut group = c.benchmark_group("topic_match");
    configure(&mut group);
    for n in SIZES {
        let subs = subscriptions(n);
        let names: Vec<TopicName> = topics(n)
            .iter()
            .map(|t| TopicName::try_from(t.as_str()).expect("valid bench input"))
            .collect();
        let trie = build_ours(&subs);
        let naive = build_naive(&subs);
        for name in &names {
            assert_eq!(count_ours(&trie, name), count_naive(&naive, name), "{name}");
        }
        let mut at = 0;
        group.bench_function(BenchmarkId::new("ours", n), |b| {
            b.iter(|| {
                at = (at + 1) % names.len();
                count_ours(&trie, &names[at])
            });
        });
        drop(trie);

        let quill_topics: Vec<quill::Topic> = topics(n)
            .iter()
            .map(|t| quill::Topic::parse(t).expect("valid bench input"))
            .collect();
        let registry = build_quill(&subs);
        assert_eq!(
            registry.matching(&quill_topics[0]).len(),
            count_naive(&naive, &names[0])
        );
        group.bench_function(BenchmarkId::new("quill", n), |b| {
            b.iter(|| {
                at = (at + 1) % names.len();
                registry.matching(&quill_topics[at]).len()
            });
        });
        drop(registry);

        if n > 10_000 {
            configure_slow(&mut group);
        }
        group.bench_function(BenchmarkId::new("naive", n), |b| {
            b.iter(|| {
                at = (at + 1) % names.len();
                count_naive(&naive, &names[at])
            });
        });
        let engine_topics: Vec<Arc<TopicPath>> = topics(n)
            .into_iter()
            .map(|t| Arc::new(TopicPath::new(t).expect("valid bench input")))
            .collect();
        let engine = build_engine(&subs);
        assert_eq!(
            count_engine(&engine, &engine_topics[0]),
            count_naive(&naive, &names[0])
        );
        group.bench_function(BenchmarkId::new("engine", n), |b| {
            b.iter(|| {
                at = (at + 1) % names.len();
                count_engine(&engine, &engine_topics[at])
            });
        });
        configure(&mut group);
        group.sampling_mode(SamplingMode::Auto);
    }
    group.finish();
}

/// New device subscriptions added to (and removed from) the 1M set.
fn extra_filters() -> Vec<String> {
    (0..4096)
        .map(|i| format!("tele/new{i:07}/SENSOR"))
        .collect()
}

fn bench_insert_remove(c: &mut Criterion) {
    let subs = subscriptions(BIG);
    let extra = extra_filters();
    let key = |i: u64| 10_000_000 + i;
    let mut group = c.benchmark_group("topic_insert_remove");
    configure(&mut group);

    let mut trie = build_ours(&subs);
    let ours: Vec<SubscriptionFilter> = extra
        .iter()
        .map(|f| SubscriptionFilter::try_from(f.as_str()).expect("valid bench input"))
        .collect();
    group.bench_function(BenchmarkId::new("ours_insert", BIG), |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for i in 0..iters {
                black_box(
                    trie.insert(&ours[i as usize % ours.len()], key(i), 1)
                        .expect("valid bench input"),
                );
            }
            let elapsed = start.elapsed();
            for i in 0..iters {
                trie.remove(&ours[i as usize % ours.len()], key(i));
            }
            elapsed
        });
    });
    group.bench_function(BenchmarkId::new("ours_remove", BIG), |b| {
        b.iter_custom(|iters| {
            for i in 0..iters {
                trie.insert(&ours[i as usize % ours.len()], key(i), 1)
                    .expect("valid bench input");
            }
            let start = Instant::now();
            for i in 0..iters {
                black_box(trie.remove(&ours[i as usize % ours.len()], key(i)));
            }
            start.elapsed()
        });
    });
    assert_eq!(trie.len(), BIG);
    drop(trie);

    let registry = build_quill(&subs);
    let patterns: Vec<quill::Pattern> = extra
        .iter()
        .map(|f| quill::Pattern::parse(f).expect("valid bench input"))
        .collect();
    group.bench_function(BenchmarkId::new("quill_insert", BIG), |b| {
        b.iter_custom(|iters| {
            let owned: Vec<quill::Pattern> = (0..iters)
                .map(|i| patterns[i as usize % patterns.len()].clone())
                .collect();
            let start = Instant::now();
            for (i, pattern) in (0..).zip(owned) {
                registry.subscribe(pattern, key(i));
            }
            let elapsed = start.elapsed();
            for i in 0..iters {
                registry.unsubscribe(&patterns[i as usize % patterns.len()], &key(i));
            }
            elapsed
        });
    });
    group.bench_function(BenchmarkId::new("quill_remove", BIG), |b| {
        b.iter_custom(|iters| {
            for i in 0..iters {
                registry.subscribe(patterns[i as usize % patterns.len()].clone(), key(i));
            }
            let start = Instant::now();
            for i in 0..iters {
                black_box(registry.unsubscribe(&patterns[i as usize % patterns.len()], &key(i)));
            }
            start.elapsed()
        });
    });
    drop(registry);

    let mut naive = build_naive(&subs);
    let filters: Vec<TopicFilter> = extra
        .iter()
        .map(|f| TopicFilter::try_from(f.as_str()).expect("valid bench input"))
        .collect();
    group.bench_function(BenchmarkId::new("naive_insert", BIG), |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for i in 0..iters {
                naive.push((filters[i as usize % filters.len()].clone(), key(i)));
            }
            let elapsed = start.elapsed();
            naive.truncate(BIG);
            elapsed
        });
    });
    configure_slow(&mut group);
    group.bench_function(BenchmarkId::new("naive_remove", BIG), |b| {
        b.iter_custom(|iters| {
            for i in 0..iters {
                naive.push((filters[i as usize % filters.len()].clone(), key(i)));
            }
            let start = Instant::now();
            for i in 0..iters {
                let filter = &filters[i as usize % filters.len()];
                let found = naive.iter().rposition(|(f, k)| *k == key(i) && f == filter);
                black_box(found.map(|at| naive.swap_remove(at)));
            }
            start.elapsed()
        });
    });
    drop(naive);
    // mqtt-topic-engine without `router` has no subscription store: its
    // insert/remove would be the same Vec operations as `naive`.
    group.finish();
}

/// Retained topics: per device `tele/<dev>/SENSOR`, `tele/<dev>/STATE`, `stat/<dev>/POWER`.
fn retained_topics(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let dev = i / 3;
            match i % 3 {
                0 => format!("tele/dev{dev:07}/SENSOR"),
                1 => format!("tele/dev{dev:07}/STATE"),
                _ => format!("stat/dev{dev:07}/POWER"),
            }
        })
        .collect()
}

fn bench_retained(c: &mut Criterion) {
    let topics = retained_topics(BIG);
    let devices = BIG / 3;
    let filters: Vec<String> = (0..64)
        .map(|k| {
            let dev = (k * 104_729) % devices;
            if k % 2 == 0 {
                format!("tele/dev{dev:07}/+")
            } else {
                format!("+/dev{dev:07}/#")
            }
        })
        .collect();
    let ours_filters: Vec<TopicFilter> = filters
        .iter()
        .map(|f| TopicFilter::try_from(f.as_str()).expect("valid bench input"))
        .collect();
    let names: Vec<TopicName> = topics
        .iter()
        .map(|t| TopicName::try_from(t.as_str()).expect("valid bench input"))
        .collect();
    let mut group = c.benchmark_group("topic_retained");
    configure(&mut group);

    let mut tree = RetainedTree::new();
    for (i, name) in (0..).zip(&names) {
        tree.insert(name.clone(), i as u64);
    }
    let ours_count = |f: &TopicFilter| {
        let mut n = 0;
        tree.for_each_match(f, |name, v| {
            black_box((name, v));
            n += 1;
        });
        n
    };
    let naive_count = |f: &TopicFilter| names.iter().filter(|n| f.matches(n)).count();
    assert_eq!(ours_count(&ours_filters[0]), naive_count(&ours_filters[0]));
    assert_eq!(ours_count(&ours_filters[1]), 3);
    let mut at = 0;
    group.bench_function(BenchmarkId::new("ours", BIG), |b| {
        b.iter(|| {
            at = (at + 1) % ours_filters.len();
            ours_count(&ours_filters[at])
        });
    });
    drop(tree);

    configure_slow(&mut group);
    group.bench_function(BenchmarkId::new("naive", BIG), |b| {
        b.iter(|| {
            at = (at + 1) % ours_filters.len();
            naive_count(&ours_filters[at])
        });
    });
    let quill_topics: Vec<quill::Topic> = topics
        .iter()
        .map(|t| quill::Topic::parse(t).expect("valid bench input"))
        .collect();
    let quill_patterns: Vec<quill::Pattern> = filters
        .iter()
        .map(|f| quill::Pattern::parse(f).expect("valid bench input"))
        .collect();
    group.bench_function(BenchmarkId::new("quill", BIG), |b| {
        b.iter(|| {
            at = (at + 1) % quill_patterns.len();
            quill_topics
                .iter()
                .filter(|t| quill_patterns[at].matches(t))
                .count()
        });
    });
    drop(quill_topics);
    let engine_topics: Vec<Arc<TopicPath>> = topics
        .iter()
        .map(|t| Arc::new(TopicPath::new(t.as_str()).expect("valid bench input")))
        .collect();
    let engine_patterns: Vec<TopicPatternPath> = filters
        .iter()
        .map(|f| {
            TopicPatternPath::new_from_string(f.as_str(), CacheStrategy::NoCache)
                .expect("valid bench input")
        })
        .collect();
    group.bench_function(BenchmarkId::new("engine", BIG), |b| {
        b.iter(|| {
            at = (at + 1) % engine_patterns.len();
            engine_topics
                .iter()
                .filter(|t| engine_patterns[at].try_match(Arc::clone(t)).is_ok())
                .count()
        });
    });
    group.finish();
}

fn main() {
    if let Ok(which) = std::env::var(MEMORY_OF) {
        measure_memory_of(&which);
        return;
    }
    report_memory();
    let mut criterion = Criterion::default().configure_from_args();
    bench_match(&mut criterion);
    bench_insert_remove(&mut criterion);
    bench_retained(&mut criterion);
    criterion.final_summary();
}
