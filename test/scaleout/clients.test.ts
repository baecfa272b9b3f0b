// The end-to-end real-client tests (test/e2e/clients.test.ts: skopeo, podman, buildah, ctr and docker
// pushing and pulling the umoci-built fixtures, logins, every kind of credential), run once more,
// unchanged, against a node on the scale-out backends: PostgreSQL + Ceph RGW.
process.env.STOWAGE_E2E_SCALEOUT = '1';
await import('../e2e/clients.test.js');
