import { describe, expect, it } from 'vitest';
import { ExternalRoutes } from './external-routes.ts';

describe('ExternalRoutes', () => {
  it('replaces targets atomically, keeping in-flight counts of kept and replaced ports', () => {
    const r = new ExternalRoutes();
    expect(r.targets('a')).toBeNull();
    r.put('a', [1001, 1002]);
    const [t1, t2] = r.targets('a') ?? [];
    if (!t1 || !t2) throw new Error('targets missing');
    t1.inFlight = 2;
    t2.inFlight = 0;
    r.put('a', [1002, 1003]);
    expect(r.targets('a')?.map((t) => t.port)).toEqual([1002, 1003]);
    expect(r.targets('a')?.[0]).toBe(t2); // the same object: the router's counts stay right
    expect(r.state('a').inFlight).toEqual({ '1001': 2, '1002': 0, '1003': 0 });
    t1.inFlight = 0; // the replaced target's requests finished
    expect(r.state('a').inFlight).toEqual({ '1002': 0, '1003': 0 });
  });

  it('dedupes ports, keeps apps apart and forgets a removed app', () => {
    const r = new ExternalRoutes();
    r.put('a', [1, 1, 2]);
    r.put('__proto__', [3]);
    expect(r.targets('a')?.map((t) => t.port)).toEqual([1, 2]);
    expect(r.targets('__proto__')?.map((t) => t.port)).toEqual([3]);
    expect(r.targets('constructor')).toBeNull();
    r.remove('a');
    expect(r.targets('a')).toBeNull();
    expect(r.list().map((s) => s.app)).toEqual(['__proto__']);
  });
});
