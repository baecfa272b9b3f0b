import { describe, expect, it } from 'vitest';
import { TupleMap } from '../../src/control/tuple-map.js';

describe('TupleMap', () => {
  it('keeps tuples apart that one joined string would confuse', () => {
    const map = new TupleMap<number>(3);
    map.set(['a', 'b:c', 'd'], 1);
    map.set(['a:b', 'c', 'd'], 2);
    map.set(['a', 'b', 'c:d'], 3);
    map.set(['a', null, 'd'], 4);
    map.set(['a', 'null', 'd'], 5);
    expect(map.size).toBe(5);
    expect(map.get(['a', 'b:c', 'd'])).toBe(1);
    expect(map.get(['a:b', 'c', 'd'])).toBe(2);
    expect(map.get(['a', null, 'd'])).toBe(4);
    expect(map.get(['a', 'null', 'd'])).toBe(5);
    expect(map.get(['a', 'b', 'd'])).toBeUndefined();
    expect(map.get(['x', 'b', 'd'])).toBeUndefined();
  });

  it('replaces the value of a tuple set again without counting it twice', () => {
    const map = new TupleMap<string>(2);
    map.set(['r', 'd'], 'first');
    map.set(['r', 'd'], 'second');
    map.set(['r', 'e'], 'third');
    expect(map.size).toBe(2);
    expect(map.values()).toEqual(['second', 'third']);
  });

  it('lists every value and empties on clear', () => {
    const map = new TupleMap<number>(2);
    map.set(['b', 'x'], 1);
    map.set(['a', 'y'], 2);
    map.set(['b', 'z'], 3);
    expect(map.values().sort()).toEqual([1, 2, 3]);
    map.clear();
    expect(map.size).toBe(0);
    expect(map.values()).toEqual([]);
    expect(map.get(['b', 'x'])).toBeUndefined();
  });

  it('refuses a key of the wrong length', () => {
    const map = new TupleMap<number>(2);
    expect(() => map.set(['a'], 1)).toThrow(/expected 2/);
    expect(() => map.get(['a', 'b', 'c'])).toThrow(/expected 2/);
  });
});
