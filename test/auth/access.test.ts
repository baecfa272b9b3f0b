// The scope grammar of the token specification and the permission patterns of robots and tokens.
import { describe, expect, it } from 'vitest';
import { covers, formatScope, parsePermission, parseScope, patternProject, ScopeError } from '../../src/auth/access.js';

describe('scopes', () => {
  it('parse type:name:actions lists, with a host:port in the name and resource classes ignored', () => {
    expect(parseScope('repository:team/app:pull,push registry:catalog:*')).toEqual([
      { type: 'repository', name: 'team/app', actions: ['pull', 'push'] },
      { type: 'registry', name: 'catalog', actions: ['*'] },
    ]);
    expect(parseScope('repository:localhost:5000/team/app:pull')).toEqual([{ type: 'repository', name: 'localhost:5000/team/app', actions: ['pull'] }]);
    expect(parseScope('repository(plugin):team/app:pull')).toEqual([{ type: 'repository', name: 'team/app', actions: ['pull'] }]);
    // The same resource twice: merged, each action once.
    expect(parseScope('repository:a:pull repository:a:push,pull')).toEqual([{ type: 'repository', name: 'a', actions: ['pull', 'push'] }]);
    expect(parseScope('  ')).toEqual([]);
    expect(parseScope('repository:a:')).toEqual([{ type: 'repository', name: 'a', actions: [] }]);
  });

  it('refuse malformed scopes', () => {
    for (const bad of ['repository', 'repository:a', ':a:pull', 'Repo:a:pull', 'repository::pull', 'repository:a b:pull', 'repository:a:PULL', `repository:${'a'.repeat(700)}:pull`]) {
      expect(() => parseScope(bad), bad).toThrow(ScopeError);
    }
  });

  it('format and cover', () => {
    const granted = [{ type: 'repository', name: 'a', actions: ['pull'] }, { type: 'registry', name: 'catalog', actions: ['*'] }];
    expect(formatScope([...granted, { type: 'repository', name: 'b', actions: [] }])).toBe('repository:a:pull registry:catalog:*');
    expect(covers(granted, { type: 'repository', name: 'a', actions: ['pull'] })).toBe(true);
    expect(covers(granted, { type: 'repository', name: 'a', actions: ['pull', 'push'] })).toBe(false);
    expect(covers(granted, { type: 'repository', name: 'b', actions: ['pull'] })).toBe(false);
    expect(covers(granted, { type: 'registry', name: 'catalog', actions: ['*'] })).toBe(true);
  });
});

describe('permissions', () => {
  it('match * within a component and ** across components', () => {
    const direct = parsePermission('repository:team/*:pull');
    expect(direct.matches('team/app')).toBe(true);
    expect(direct.matches('team/app/sub')).toBe(false);
    expect(direct.matches('team')).toBe(false);
    expect(direct.matches('teamx/app')).toBe(false);
    const deep = parsePermission('repository:team/**:pull,push');
    expect(deep.actions).toEqual(['pull', 'push']);
    expect(deep.matches('team/app/sub')).toBe(true);
    expect(deep.matches('team-other/app')).toBe(false);
    const prefix = parsePermission('repository:team/web-*:*');
    expect(prefix.actions).toEqual(['pull', 'push', 'delete']);
    expect(prefix.matches('team/web-frontend')).toBe(true);
    expect(prefix.matches('team/api')).toBe(false);
    // Pattern characters are literal: `.` is not "any character".
    expect(parsePermission('repository:team/a.b:pull').matches('team/axb')).toBe(false);
    expect(parsePermission('repository:team:pull').matches('team')).toBe(true);
  });

  it('refuse malformed permissions and unknown actions', () => {
    for (const bad of ['team/*:pull', 'repository:team/*', 'repository:Team/*:pull', 'repository:team/*:fly', 'repository:team/***:pull', 'registry:catalog:*', 'repository:team/(x):pull']) {
      expect(() => parsePermission(bad), bad).toThrow(ScopeError);
    }
  });

  it('know the project a pattern is confined to', () => {
    expect(patternProject('team/**')).toBe('team');
    expect(patternProject('team')).toBe('team');
    expect(patternProject('**')).toBeNull();
    expect(patternProject('te*/app')).toBeNull();
  });
});
