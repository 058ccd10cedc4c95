use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::*;
use crate::retry::SplitMix64;
use crate::retry::jitter::RandomSource;

fn conn(index: u32) -> ConnId {
    ConnId {
        index,
        generation: index + 100,
    }
}

#[test]
fn join_leave_and_members_in_join_order() {
    let mut g = Groups::new(8, 4, 2);
    assert_eq!(g.join(conn(1), "room", None), Ok(true));
    assert_eq!(g.join(conn(2), "room", None), Ok(true));
    assert_eq!(g.join(conn(1), "room", None), Ok(false), "already in");
    assert_eq!(g.join(conn(3), "room", None), Ok(true));
    assert_eq!(
        g.members("room").collect::<Vec<_>>(),
        [conn(1), conn(2), conn(3)]
    );
    assert!(g.leave(2, "room"));
    assert!(!g.leave(2, "room"));
    assert_eq!(g.members("room").collect::<Vec<_>>(), [conn(1), conn(3)]);
    assert_eq!((g.count(), g.memberships(), g.len_of("room")), (1, 2, 2));
    assert!(g.leave(1, "room") && g.leave(3, "room"));
    assert_eq!((g.count(), g.memberships()), (0, 0), "an empty group goes");
    assert_eq!(g.members("room").count(), 0);
}

#[test]
fn caps_and_names_are_checked() {
    let mut g = Groups::new(8, 2, 2);
    assert_eq!(g.join(conn(1), "", None), Err(GroupError::InvalidName));
    let long = "x".repeat(MAX_GROUP_NAME + 1);
    assert_eq!(g.join(conn(1), &long, None), Err(GroupError::InvalidName));
    assert_eq!(
        g.join(conn(9), "a", None),
        Err(GroupError::NoSuchConnection)
    );
    g.join(conn(1), "a", None).unwrap();
    g.join(conn(1), "b", None).unwrap();
    assert_eq!(
        g.join(conn(1), "c", None),
        Err(GroupError::TooManyForConnection { limit: 2 })
    );
    assert_eq!(
        g.join(conn(2), "c", None),
        Err(GroupError::TooManyGroups { limit: 2 })
    );
    assert_eq!(
        g.join(conn(2), "a", None),
        Ok(true),
        "an existing group is fine"
    );
    assert_eq!(g.groups_of(1).map(|n| &**n).collect::<Vec<_>>(), ["b", "a"]);
}

#[test]
fn a_closing_connection_leaves_every_group() {
    let mut g = Groups::new(8, 8, 8);
    for name in ["a", "b", "c"] {
        g.join(conn(1), name, None).unwrap();
        g.join(conn(2), name, None).unwrap();
    }
    assert_eq!(g.conn_gone(1), 3);
    assert_eq!(g.conn_gone(1), 0);
    assert_eq!(g.memberships(), 3);
    for name in ["a", "b", "c"] {
        assert_eq!(g.members(name).collect::<Vec<_>>(), [conn(2)]);
    }
    g.conn_gone(2);
    assert_eq!((g.count(), g.memberships()), (0, 0));
}

#[test]
fn a_handed_in_name_is_used_as_it_is() {
    let mut g = Groups::new(4, 4, 4);
    let name: Arc<str> = Arc::from("lobby");
    g.join(conn(0), "lobby", Some(&name)).unwrap();
    assert!(Arc::ptr_eq(g.groups_of(0).next().unwrap(), &name));
}

/// Random joins, leaves and closes against a plain map of sets.
#[test]
fn random_walk_matches_a_reference() {
    let mut rng = SplitMix64::new(7);
    let (slots, names) = (16u32, ["a", "b", "c", "d", "e", "f"]);
    let mut g = Groups::new(slots as usize, 5, 3);
    let mut model: BTreeMap<&str, Vec<ConnId>> = BTreeMap::new();
    for step in 0..20_000 {
        let c = conn((rng.next_u64() % u64::from(slots)) as u32);
        let name = names[(rng.next_u64() % names.len() as u64) as usize];
        match rng.next_u64() % 10 {
            0 => {
                let n = g.conn_gone(c.index());
                let mut removed = 0;
                for members in model.values_mut() {
                    let before = members.len();
                    members.retain(|&m| m != c);
                    removed += before - members.len();
                }
                model.retain(|_, m| !m.is_empty());
                assert_eq!(n, removed, "step {step}");
            }
            1..=5 => {
                let in_model = model.get(name).is_some_and(|m| m.contains(&c));
                let held = model.values().filter(|m| m.contains(&c)).count();
                let expected = if in_model {
                    Ok(false)
                } else if held >= 3 {
                    Err(GroupError::TooManyForConnection { limit: 3 })
                } else if !model.contains_key(name) && model.len() >= 5 {
                    Err(GroupError::TooManyGroups { limit: 5 })
                } else {
                    model.entry(name).or_default().push(c);
                    Ok(true)
                };
                assert_eq!(g.join(c, name, None), expected, "step {step}");
            }
            _ => {
                let was = model.get_mut(name).and_then(|m| {
                    let pos = m.iter().position(|&x| x == c)?;
                    m.remove(pos);
                    Some(())
                });
                model.retain(|_, m| !m.is_empty());
                assert_eq!(g.leave(c.index(), name), was.is_some(), "step {step}");
            }
        }
        assert_eq!(g.count(), model.len());
        assert_eq!(g.memberships(), model.values().map(Vec::len).sum::<usize>());
        for (name, members) in &model {
            assert_eq!(&g.members(name).collect::<Vec<_>>(), members, "step {step}");
        }
        let of: BTreeSet<&str> = g.groups_of(c.index()).map(|n| &**n).collect();
        let expected: BTreeSet<&str> = model
            .iter()
            .filter(|(_, m)| m.contains(&c))
            .map(|(n, _)| *n)
            .collect();
        assert_eq!(of, expected, "step {step}");
    }
}

#[test]
fn sticky_memberships_are_capped() {
    let mut s = Sticky::new(2, 3);
    let (a, b, c): (Arc<str>, Arc<str>, Arc<str>) = ("a".into(), "b".into(), "c".into());
    assert_eq!(s.add("u", &a), Ok(true));
    assert_eq!(s.add("u", &a), Ok(false));
    assert_eq!(s.add("u", &b), Ok(true));
    assert_eq!(s.add("u", &c), Err(GroupError::TooManyForUser { limit: 2 }));
    assert_eq!(s.add("v", &c), Ok(true));
    assert_eq!(s.add("w", &c), Err(GroupError::TooManyForUser { limit: 3 }));
    assert_eq!(s.of("u").len(), 2);
    assert!(s.remove("u", "a") && !s.remove("u", "a"));
    assert_eq!((s.of("u").len(), s.len()), (1, 2));
    assert!(s.remove("u", "b"));
    assert!(s.of("u").is_empty());
}
