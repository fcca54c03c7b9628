/**
 * Teams and members (docs/security.md):
 *   GET    /api/v1/teams                         the caller's teams and their role in each
 *   POST   /api/v1/teams                         {name, slug?}: the caller becomes its owner
 *   GET    /api/v1/teams/{team}                  the team and its members (team:read)
 *   DELETE /api/v1/teams/{team}                  an empty team (team:delete, owners)
 *   GET    /api/v1/teams/{team}/members
 *   PUT    /api/v1/teams/{team}/members          {user, role}: add or change (team:manage, admins)
 *   DELETE /api/v1/teams/{team}/members/{user}   (team:manage)
 * A team the caller is not in is a 404, like one that does not exist.
 */
import type { Role } from '@minipaas/core';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ServerContext } from '../context.ts';
import { type Principal, roleIn, type Target } from '../http/access.ts';
import { parse } from '../http/validate.ts';
import { createTeamSchema, memberSchema } from '../services/team-service.ts';

type TeamParams = { Params: { team: string } };

const target = (req: FastifyRequest) => req.accessTarget as Target;
const callerRole = (req: FastifyRequest) => roleIn(req.principal as Principal, target(req).teamId) as Role;

export function teamRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.get('/api/v1/teams', { config: { action: 'team:read' } }, async (req) => {
    const p = req.principal as Principal;
    if (p.projectId) {
      // A project-scoped token sees the team of its project only.
      const teamId = (await ctx.access.project(p.projectId)).teamId;
      const role = roleIn(p, teamId);
      return { teams: role ? await ctx.teams.list(new Map([[teamId, role]])) : [] };
    }
    return { teams: await ctx.teams.list(p.everywhere ? 'all' : p.teams) };
  });
  app.post('/api/v1/teams', { config: { action: 'team:create' } }, async (req, reply) => {
    const team = await ctx.teams.create(
      parse(createTeamSchema, req.body, 'team'),
      req.principal?.userId ?? null,
    );
    return reply.status(201).send({ ...team, role: 'owner' });
  });
  app.get<TeamParams>('/api/v1/teams/:team', { config: { action: 'team:read' } }, async (req) => ({
    ...(await ctx.teams.get(target(req).teamId)),
    role: callerRole(req),
    members: await ctx.teams.members(target(req).teamId),
  }));
  app.delete<TeamParams>('/api/v1/teams/:team', { config: { action: 'team:delete' } }, async (req, reply) => {
    await ctx.teams.delete(target(req).teamId);
    return reply.status(204).send();
  });
  app.get<TeamParams>('/api/v1/teams/:team/members', { config: { action: 'team:read' } }, async (req) => ({
    members: await ctx.teams.members(target(req).teamId),
  }));
  app.put<TeamParams>('/api/v1/teams/:team/members', { config: { action: 'team:manage' } }, async (req) => {
    const input = parse(memberSchema, req.body, 'member');
    return ctx.teams.setMember(target(req).teamId, input.user, input.role, callerRole(req));
  });
  app.delete<{ Params: { team: string; user: string } }>(
    '/api/v1/teams/:team/members/:user',
    { config: { action: 'team:manage' } },
    async (req, reply) => {
      await ctx.teams.removeMember(target(req).teamId, req.params.user, callerRole(req));
      return reply.status(204).send();
    },
  );
}
