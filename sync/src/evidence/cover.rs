//! Which changes a set of signatures covers. A change is covered when its
//! own author signed its hash or the hash of a change after it (one that
//! depends on it, directly or not): Automerge change hashes cover their
//! dependencies' hashes, so nobody can add a change below a signed one.
//!
//! Pure: the walk sees a change graph and a question "did this actor sign
//! this hash?", and nothing else.
//!
//! ```
//! use automerge::{ActorId, ChangeHash};
//! use tideline_sync::evidence::{tips, unsigned, Node};
//!
//! let (boat, station) = (ActorId::from(&[1u8; 16][..]), ActorId::from(&[2u8; 16][..]));
//! let node = |n: u8, actor: &ActorId, deps: &[u8]| Node {
//!     hash: ChangeHash([n; 32]),
//!     actor: actor.clone(),
//!     deps: deps.iter().map(|d| ChangeHash([*d; 32])).collect(),
//! };
//! // The boat wrote 1 and 2; the station wrote 3 on top.
//! let graph = vec![node(1, &boat, &[]), node(2, &boat, &[1]), node(3, &station, &[2])];
//! assert_eq!(tips(&graph), vec![ChangeHash([3; 32])]);
//! // The boat signed 2 and the station 3: all covered.
//! let signed = |h: &ChangeHash, a: &ActorId| (h.0[0] == 2 && *a == boat) || (h.0[0] == 3 && *a == station);
//! assert!(unsigned(&graph, signed).is_empty());
//! // Had the boat signed only 1, its change 2 would be nobody's.
//! let signed = |h: &ChangeHash, a: &ActorId| (h.0[0] == 1 && *a == boat) || (h.0[0] == 3 && *a == station);
//! assert_eq!(unsigned(&graph, signed), vec![1]);
//! ```

use automerge::{ActorId, Change, ChangeHash};
use std::collections::{HashMap, HashSet};

/// One change as the walk sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub hash: ChangeHash,
    pub actor: ActorId,
    pub deps: Vec<ChangeHash>,
}

/// The walk's view of decoded changes.
pub fn nodes(changes: &[Change]) -> Vec<Node> {
    changes
        .iter()
        .map(|c| Node {
            hash: c.hash(),
            actor: c.actor_id().clone(),
            deps: c.deps().to_vec(),
        })
        .collect()
}

/// The hashes of `graph` that nothing else in it depends on, sorted.
pub fn tips_of(graph: &[(ChangeHash, Vec<ChangeHash>)]) -> Vec<ChangeHash> {
    let below: HashSet<&ChangeHash> = graph.iter().flat_map(|(_, deps)| deps).collect();
    let mut tips: Vec<ChangeHash> = graph
        .iter()
        .map(|(h, _)| *h)
        .filter(|h| !below.contains(h))
        .collect();
    tips.sort_unstable();
    tips.dedup();
    tips
}

/// [`tips_of`] for nodes.
pub fn tips(graph: &[Node]) -> Vec<ChangeHash> {
    let pairs: Vec<(ChangeHash, Vec<ChangeHash>)> =
        graph.iter().map(|n| (n.hash, n.deps.clone())).collect();
    tips_of(&pairs)
}

/// The positions in `graph` of the changes no signature of their author
/// covers, in order. `graph` may come in any order; dependencies outside it
/// are taken to be covered already (they are history the receiver holds).
pub fn unsigned(
    graph: &[Node],
    mut signed: impl FnMut(&ChangeHash, &ActorId) -> bool,
) -> Vec<usize> {
    let at: HashMap<ChangeHash, usize> =
        graph.iter().enumerate().map(|(i, n)| (n.hash, i)).collect();
    // Each change's authors whose signature reaches it, as author positions.
    let mut authors: Vec<&ActorId> = Vec::new();
    for n in graph {
        if !authors.contains(&&n.actor) {
            authors.push(&n.actor);
        }
    }
    let mut reached: Vec<Vec<bool>> = vec![vec![false; authors.len()]; graph.len()];
    // Children before parents: a reverse topological order.
    let order = reverse_topological(graph, &at);
    for &i in &order {
        for (a, actor) in authors.iter().enumerate() {
            if !reached[i][a] && signed(&graph[i].hash, actor) {
                reached[i][a] = true;
            }
        }
        let mine = reached[i].clone();
        for dep in &graph[i].deps {
            if let Some(&d) = at.get(dep) {
                for (a, r) in mine.iter().enumerate() {
                    reached[d][a] |= *r;
                }
            }
        }
    }
    (0..graph.len())
        .filter(|&i| {
            let a = authors.iter().position(|x| **x == graph[i].actor);
            !a.is_some_and(|a| reached[i][a])
        })
        .collect()
}

/// Positions of `graph` so that every change comes before its
/// dependencies. Cycles cannot occur in real hashes; any left by hostile
/// input are visited once, in input order, and so are judged on what
/// reached them.
fn reverse_topological(graph: &[Node], at: &HashMap<ChangeHash, usize>) -> Vec<usize> {
    let mut dependents = vec![0usize; graph.len()];
    for n in graph {
        for dep in &n.deps {
            if let Some(&d) = at.get(dep) {
                dependents[d] += 1;
            }
        }
    }
    let mut ready: Vec<usize> = (0..graph.len()).filter(|&i| dependents[i] == 0).collect();
    let mut order = Vec::with_capacity(graph.len());
    let mut seen = vec![false; graph.len()];
    while let Some(i) = ready.pop() {
        if std::mem::replace(&mut seen[i], true) {
            continue;
        }
        order.push(i);
        for dep in &graph[i].deps {
            if let Some(&d) = at.get(dep) {
                dependents[d] -= 1;
                if dependents[d] == 0 {
                    ready.push(d);
                }
            }
        }
    }
    order.extend((0..graph.len()).filter(|&i| !seen[i]));
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn actor(n: u8) -> ActorId {
        ActorId::from(&[n; 16][..])
    }

    /// A random DAG: node i depends on some earlier nodes; authors among 3.
    fn dag() -> impl Strategy<Value = Vec<Node>> {
        prop::collection::vec(
            (
                0u8..3,
                prop::collection::vec(any::<prop::sample::Index>(), 0..3),
            ),
            1..30,
        )
        .prop_map(|spec| {
            spec.iter()
                .enumerate()
                .map(|(i, (a, deps))| {
                    let mut deps: Vec<ChangeHash> = if i == 0 {
                        Vec::new()
                    } else {
                        deps.iter()
                            .map(|d| ChangeHash([d.index(i) as u8; 32]))
                            .collect()
                    };
                    deps.sort_unstable();
                    deps.dedup();
                    Node {
                        hash: ChangeHash([i as u8; 32]),
                        actor: actor(*a),
                        deps,
                    }
                })
                .collect()
        })
    }

    /// Whether `from` is `to` or reaches it through dependencies.
    fn reaches(graph: &[Node], from: usize, to: usize) -> bool {
        let mut stack = vec![from];
        let mut seen = HashSet::new();
        while let Some(i) = stack.pop() {
            if i == to {
                return true;
            }
            if seen.insert(i) {
                stack.extend(graph[i].deps.iter().map(|d| d.0[0] as usize));
            }
        }
        false
    }

    proptest! {
        /// The walk agrees with the definition: a change is covered exactly
        /// when a hash its author signed is it or reaches it; input order
        /// does not matter.
        #[test]
        fn coverage_is_reachability_from_the_authors_signatures(
            graph in dag(),
            signs in prop::collection::vec((any::<prop::sample::Index>(), 0u8..3), 0..10),
            shuffle in any::<prop::sample::Index>(),
        ) {
            let signed: HashSet<(usize, u8)> =
                signs.iter().map(|(i, a)| (i.index(graph.len()), *a)).collect();
            let is_signed = |h: &ChangeHash, a: &ActorId| signed.contains(&(h.0[0] as usize, a.to_bytes()[0]));
            let expected: Vec<usize> = (0..graph.len())
                .filter(|&c| {
                    !(0..graph.len()).any(|s| {
                        signed.contains(&(s, graph[c].actor.to_bytes()[0])) && reaches(&graph, s, c)
                    })
                })
                .collect();
            prop_assert_eq!(unsigned(&graph, is_signed), expected.clone());
            let mut turned = graph.clone();
            turned.rotate_left(shuffle.index(graph.len()));
            let mut got: Vec<u8> = unsigned(&turned, is_signed).iter().map(|&i| turned[i].hash.0[0]).collect();
            got.sort_unstable();
            prop_assert_eq!(got, expected.iter().map(|&i| i as u8).collect::<Vec<_>>());
        }
    }
}
