; Corral's Windows installer (NSIS 3). Per-user: no administrator rights, installs into
; %LOCALAPPDATA%\Programs\Corral, a Start-menu shortcut and an optional desktop one, and an
; uninstaller (also in Settings > Apps) that keeps the user's models and chats
; (%LOCALAPPDATA%\Corral) unless "Also remove my models and chats" is ticked.
;
; Built by installers/build_windows.sh from the PyInstaller folder (dist\corral):
;   makensis -DVERSION=0.1.0 -DFLAVOUR=cpu -DPAYLOAD=dist\corral -DOUTFILE=dist\Corral-0.1.0-windows-x64-setup.exe installers\windows\corral.nsi
; makensis from Debian's nsis package compiles it too (tests/cli/test_installers.py does, with a
; stand-in payload), which is how the recipe is checked on Linux.

Unicode true
ManifestDPIAware true
SetCompressor /SOLID lzma

!define ROOT "${__FILEDIR__}\..\.."
!ifndef VERSION
  !define VERSION "0.1.0"
!endif
!ifndef FLAVOUR
  !define FLAVOUR "cpu"
!endif
!ifndef PAYLOAD
  !define PAYLOAD "${ROOT}\dist\corral"
!endif
!ifndef OUTFILE
  !define OUTFILE "${ROOT}\dist\Corral-${VERSION}-windows-x64-setup.exe"
!endif
!define APP "Corral"
!define UNINST_KEY "Software\Microsoft\Windows\CurrentVersion\Uninstall\${APP}"
!define DATA_DIR "$LOCALAPPDATA\${APP}"  ; platformdirs' user data dir: models, chats, settings, logs

Name "${APP}"
OutFile "${OUTFILE}"
InstallDir "$LOCALAPPDATA\Programs\${APP}"
InstallDirRegKey HKCU "Software\${APP}" "InstallDir"
RequestExecutionLevel user
BrandingText "${APP} ${VERSION} (${FLAVOUR})"

VIProductVersion "${VERSION}.0"
VIAddVersionKey "ProductName" "${APP}"
VIAddVersionKey "ProductVersion" "${VERSION}"
VIAddVersionKey "FileVersion" "${VERSION}"
VIAddVersionKey "FileDescription" "${APP} installer (${FLAVOUR} build)"
VIAddVersionKey "LegalCopyright" "MIT License"

!include "MUI2.nsh"
!include "FileFunc.nsh"

!define MUI_ICON "${ROOT}\resources\icons\corral.ico"
!define MUI_UNICON "${ROOT}\resources\icons\corral.ico"
!define MUI_ABORTWARNING
!define MUI_COMPONENTSPAGE_NODESC
!define MUI_FINISHPAGE_RUN "$INSTDIR\corralw.exe"
!define MUI_FINISHPAGE_RUN_TEXT "Start ${APP} now"

!insertmacro MUI_PAGE_WELCOME
!insertmacro MUI_PAGE_DIRECTORY
!insertmacro MUI_PAGE_COMPONENTS
!insertmacro MUI_PAGE_INSTFILES
!insertmacro MUI_PAGE_FINISH

!insertmacro MUI_UNPAGE_CONFIRM
!insertmacro MUI_UNPAGE_COMPONENTS
!insertmacro MUI_UNPAGE_INSTFILES

!insertmacro MUI_LANGUAGE "English"

Function .onInit
  SetShellVarContext current
FunctionEnd

Function un.onInit
  SetShellVarContext current
FunctionEnd

Section "${APP}" SecApp
  SectionIn RO
  SetOutPath "$INSTDIR"
  ; An update replaces the previous version's libraries instead of mixing with them.
  RMDir /r "$INSTDIR\_internal"
  File /r "${PAYLOAD}\*"
  WriteUninstaller "$INSTDIR\uninstall.exe"

  CreateShortcut "$SMPROGRAMS\${APP}.lnk" "$INSTDIR\corralw.exe" "" "$INSTDIR\corralw.exe" 0

  WriteRegStr HKCU "Software\${APP}" "InstallDir" "$INSTDIR"
  WriteRegStr HKCU "${UNINST_KEY}" "DisplayName" "${APP}"
  WriteRegStr HKCU "${UNINST_KEY}" "DisplayVersion" "${VERSION}"
  WriteRegStr HKCU "${UNINST_KEY}" "Publisher" "${APP}"
  WriteRegStr HKCU "${UNINST_KEY}" "DisplayIcon" "$INSTDIR\corralw.exe"
  WriteRegStr HKCU "${UNINST_KEY}" "InstallLocation" "$INSTDIR"
  WriteRegStr HKCU "${UNINST_KEY}" "UninstallString" '"$INSTDIR\uninstall.exe"'
  WriteRegStr HKCU "${UNINST_KEY}" "QuietUninstallString" '"$INSTDIR\uninstall.exe" /S'
  WriteRegDWORD HKCU "${UNINST_KEY}" "NoModify" 1
  WriteRegDWORD HKCU "${UNINST_KEY}" "NoRepair" 1
  ${GetSize} "$INSTDIR" "/S=0K" $0 $1 $2
  WriteRegDWORD HKCU "${UNINST_KEY}" "EstimatedSize" $0
SectionEnd

Section "Desktop shortcut" SecDesktop
  CreateShortcut "$DESKTOP\${APP}.lnk" "$INSTDIR\corralw.exe" "" "$INSTDIR\corralw.exe" 0
SectionEnd

; ---- uninstaller --------------------------------------------------------------------------

Section "-un.${APP}"
  Delete "$SMPROGRAMS\${APP}.lnk"
  Delete "$DESKTOP\${APP}.lnk"
  ; Only what the installer put there (never RMDir /r "$INSTDIR": the user may have chosen a
  ; folder with other things in it).
  Delete "$INSTDIR\corral.exe"
  Delete "$INSTDIR\corralw.exe"
  RMDir /r "$INSTDIR\_internal"
  Delete "$INSTDIR\uninstall.exe"
  RMDir "$INSTDIR"
  DeleteRegKey HKCU "${UNINST_KEY}"
  DeleteRegKey HKCU "Software\${APP}"
SectionEnd

Section /o "un.Also remove my models and chats" SecData
  RMDir /r "${DATA_DIR}"
SectionEnd
