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
            jdk17_headless
            maven
            kubectl
            kustomize
            k3d
            kubeconform
          ];
          shellHook = ''
            export DENO_NO_UPDATE_CHECK=1
          '';
        };
      });
    };
}
