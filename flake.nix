{
  description = "Guardyn: end-to-end encrypted messaging backend (TypeScript on Deno)";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" "x86_64-darwin" "aarch64-darwin" ];
      forAll = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in {
      # `nix develop`: every tool the tasks and the test suites use.
      devShells = forAll (pkgs: {
        default = pkgs.mkShell {
          packages = with pkgs; [
            deno
            nodejs_22
            nats-server
            protobuf
            jdk17_headless # Apache Cassandra for the CQL tests
            maven
            coturn
            nghttp2 # h2load for the abuse tests
            go # builds the pinned tools of infra/tools/install.sh
            kubectl
            kustomize
            k3d
            kubeconform
            kubernetes # kube-apiserver, controller-manager, scheduler (tasks/kube_api.ts)
            etcd
            kwok
            sops
            age
            cosign
            syft
            prometheus # promtool and the scrape test (tasks/observability_test.ts)
          ];
          shellHook = ''
            export DENO_NO_UPDATE_CHECK=1
          '';
        };
      });
    };
}
