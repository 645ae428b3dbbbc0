/**
 * Topics and wildcard subscriptions indexed by their tokens (NATS's sublist idea), so that matching costs
 * what it finds instead of a test of everything the hub holds:
 * - {@link TopicIndex}: the topics a pattern matches (a wildcard subscribe, a listing). Testing every topic,
 *   a subscribe to a pattern matching none of 100,000 topics held the hub's event loop for 44 ms.
 * - {@link PatternIndex}: the wildcard patterns a topic matches (a new topic's followers).
 *
 * Matching is the one of `topicMatcher` (src/protocol/names.ts): `*` is one token, `>` one or more (last),
 * and a pattern that does not start with `$` matches no topic starting with `$`. Results come in the order
 * their items were added.
 */

class Node<T> {
  children: Map<string, Node<T>> | null = null;
  /** Items here, by the order they were added (a topic has one; a pattern may have several). */
  items: Map<T, number> | null = null;

  child(token: string): Node<T> {
    this.children ??= new Map();
    let c = this.children.get(token);
    if (!c) {
      c = new Node();
      this.children.set(token, c);
    }
    return c;
  }
}

function byOrder<T>(found: [T, number][]): T[] {
  found.sort((a, b) => a[1] - b[1]);
  return found.map(([item]) => item);
}

/** Whether `token`, first of its name, is skipped by wildcards (a `$…` system name). */
function hidden(first: boolean, token: string, system: boolean): boolean {
  return first && !system && token.startsWith("$");
}

/** Items under dot-separated names, one tree node per token. */
abstract class TokenTree<T> {
  protected readonly root = new Node<T>();
  private added = 0;

  /** Adds `item` under `name` (a topic, or a pattern). */
  add(name: string, item: T): void {
    let node = this.root;
    for (const token of name.split(".")) node = node.child(token);
    node.items ??= new Map();
    node.items.set(item, this.added++);
  }
}

/** Topics by name, found by pattern. Topics are never removed (the hub keeps them). */
export class TopicIndex<T> extends TokenTree<T> {
  /** The items of the topics `pattern` (a valid pattern) matches, in the order they were added. */
  matching(pattern: string): T[] {
    const tokens = pattern.split(".");
    const system = pattern.startsWith("$");
    const found: [T, number][] = [];
    const all = (node: Node<T>, first: boolean): void => {
      // Every name below `node` (at least one token further).
      for (const [token, c] of node.children ?? []) {
        if (hidden(first, token, system)) continue;
        for (const e of c.items ?? []) found.push(e);
        all(c, false);
      }
    };
    const walk = (node: Node<T>, i: number): void => {
      if (i === tokens.length) {
        for (const e of node.items ?? []) found.push(e);
        return;
      }
      const t = tokens[i]!;
      if (t === ">") all(node, i === 0);
      else if (t === "*") {
        for (const [token, c] of node.children ?? []) if (!hidden(i === 0, token, system)) walk(c, i + 1);
      } else {
        const c = node.children?.get(t);
        if (c) walk(c, i + 1);
      }
    };
    walk(this.root, 0);
    return byOrder(found);
  }
}

/** Wildcard patterns and what holds them, found by topic; removed ones leave no node behind. */
export class PatternIndex<T> extends TokenTree<T> {
  /** Removes `item` from under `pattern` (and the nodes left empty). */
  remove(pattern: string, item: T): void {
    const path: [Node<T>, string][] = [];
    let node = this.root;
    for (const token of pattern.split(".")) {
      const c = node.children?.get(token);
      if (!c) return;
      path.push([node, token]);
      node = c;
    }
    node.items?.delete(item);
    if (node.items?.size === 0) node.items = null;
    for (let i = path.length - 1; i >= 0; i--) {
      const [parent, token] = path[i]!;
      const c = parent.children!.get(token)!;
      if (c.items !== null || (c.children !== null && c.children.size > 0)) break;
      parent.children!.delete(token);
    }
  }

  /** The items of the patterns topic `name` matches, in the order they were added. */
  matching(name: string): T[] {
    const tokens = name.split(".");
    const found: [T, number][] = [];
    const walk = (node: Node<T>, i: number): void => {
      if (i === tokens.length) {
        for (const e of node.items ?? []) found.push(e);
        return;
      }
      const children = node.children;
      if (children === null) return;
      // A `$…` topic: only patterns whose first token is that very token (no wildcard there).
      const wild = !(i === 0 && tokens[0]!.startsWith("$"));
      const more = wild ? children.get(">") : undefined;
      if (more) for (const e of more.items ?? []) found.push(e);
      const one = wild ? children.get("*") : undefined;
      if (one) walk(one, i + 1);
      const exact = children.get(tokens[i]!);
      if (exact) walk(exact, i + 1);
    };
    walk(this.root, 0);
    return byOrder(found);
  }
}
